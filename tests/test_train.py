"""Training loop, resume, export, and the train / eval commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ctcli.model import load_model
from ctcli.train import SEEDS, LineSet, TrainConfig, fit, greedy_collapse, make_shard, shard_path

TINY = dict(channels=(4, 4, 8, 8), rnn_hidden=8, rnn_layers=1)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    make_shard("expr", SEEDS["train"][0], 24, 32, shard_path(str(d), 0))
    make_shard("expr", SEEDS["val"], 8, 32, d / "val.npz")
    return d


def test_shard_contents_match_preprocessing(shards):
    from ctcli.image import preprocess_line, rgb_to_gray
    from ctcli.synth.expr import ExprCaptchaGenerator

    ls = LineSet()
    ls.add(shard_path(str(shards), 0))
    arr, text = ls.get(3)
    s = ExprCaptchaGenerator(SEEDS["train"][0]).sample(3)
    ref = preprocess_line(rgb_to_gray(s.image), 32, "median").array  # make_shard's default
    assert text == s.text and arr.shape == ref.shape
    assert np.abs(arr / 255.0 - ref).max() <= 1 / 255 + 1e-6


def test_fit_resume_export(shards, tmp_path):
    cfg = TrainConfig(
        data_dir=str(shards),
        run_dir=str(tmp_path / "run"),
        out=str(tmp_path / "m.pt"),
        steps=3,
        batch=8,
        shards=1,
        val_every=3,
        log_every=1,
        warmup=2,
        **TINY,
    )
    logs: list[str] = []
    fit(cfg, log=logs.append)
    assert (tmp_path / "run" / "state.pt").exists() and (tmp_path / "m.pt").exists()
    cfg.steps = 5
    fit(cfg, resume=True, log=logs.append)
    assert any("resumed" in m and "step 3" in m for m in logs)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 5]
    m = load_model(tmp_path / "m.pt")
    assert m.kind == "image" and m.labels[0] == "" and "".join(m.labels[1:]) == "0123456789+-*()="
    assert m.meta["rerank"] == "expr" and m.meta["default_lm"] == "expr-char"
    assert m.meta["features"]["height"] == 32 and m.frame_stride == 2.0
    assert m.line_options == {"height": 32, "split": False, "crop": "median", "stretch": 1.0}


def test_data_dir_keeps_its_crop_mode(tmp_path):
    from ctcli.train import PREPROCESS_FILE, data_crop

    new = tmp_path / "new"
    assert data_crop(new, "median") == "median" and (new / PREPROCESS_FILE).exists()
    assert data_crop(new, "fixed") == "median"  # recorded: a later run cannot change it
    with pytest.raises(ValueError, match="cropped 'median'"):
        make_shard("expr", SEEDS["val"], 2, 32, new / "val.npz", crop="fixed")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "train-0000.npz").write_bytes(b"")  # shards from before crop modes
    assert data_crop(legacy, "median") == "fixed"


def test_data_dir_keeps_its_stretch(tmp_path):
    from ctcli.train import PREPROCESS_FILE, data_crop

    d = tmp_path / "wide"
    make_shard("expr", SEEDS["val"], 3, 32, d / "val.npz", crop="median", stretch=1.5)
    assert '"stretch": 1.5' in (d / PREPROCESS_FILE).read_text()
    z = np.load(d / "val.npz")
    from ctcli.image import preprocess_line, rgb_to_gray
    from ctcli.synth import get_generator

    s = get_generator("expr")(SEEDS["val"]).sample(0)
    ref = preprocess_line(rgb_to_gray(s.image), 32, "median", 1.5).array
    assert z["widths"][0] == ref.shape[1]
    with pytest.raises(ValueError, match="stretched x1.5"):
        data_crop(d, "median", "expr")  # stretch 1 asked of a x1.5 dir
    make_shard("expr", SEEDS["val"], 2, 32, tmp_path / "plain" / "x.npz")
    with pytest.raises(ValueError, match="stretched x1.0"):
        data_crop(tmp_path / "plain", "median", "expr", 2.0)
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "train-0000.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="stretched x1.0"):
        data_crop(legacy, "median", stretch=1.5)
    # the exported model carries the stretch to inference
    from ctcli.model import build_model
    from ctcli.train import export

    cfg = TrainConfig(spec="expr", stretch=1.5, crop="median")
    net = build_model("crnn", n_classes=17, channels=cfg.channels, rnn_hidden=cfg.rnn_hidden)
    export(net, cfg, str(tmp_path / "m.pt"), {})
    assert load_model(tmp_path / "m.pt").line_options["stretch"] == 1.5


def test_init_weights_start_a_new_run(shards, tmp_path):
    import torch

    base = dict(data_dir=str(shards), steps=1, batch=8, shards=1, val_every=100, warmup=1,
                lr=1e-9, **TINY)  # fmt: skip
    fit(TrainConfig(run_dir=str(tmp_path / "a"), out=str(tmp_path / "a.pt"), **base),
        log=lambda m: None)  # fmt: skip
    logs: list[str] = []
    fit(TrainConfig(run_dir=str(tmp_path / "b"), out=str(tmp_path / "b.pt"),
                    init=str(tmp_path / "a.pt"), **base), log=logs.append)  # fmt: skip
    assert any("initial weights" in m for m in logs)
    a = dict(load_model(tmp_path / "a.pt").module.named_parameters())  # (BN buffers move)
    b = dict(load_model(tmp_path / "b.pt").module.named_parameters())
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_deterministic(shards, tmp_path):
    import torch

    outs = []
    for k in range(2):
        cfg = TrainConfig(
            data_dir=str(shards),
            run_dir=str(tmp_path / f"r{k}"),
            out=str(tmp_path / f"m{k}.pt"),
            steps=2,
            batch=8,
            shards=1,
            val_every=100,
            warmup=1,
            **TINY,
        )
        fit(cfg, log=lambda m: None)
        outs.append(torch.load(tmp_path / f"r{k}" / "state.pt", weights_only=True)["model"])
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_greedy_collapse():
    labels = ["", "a", "b"]
    lp = np.log(np.eye(3)[[1, 1, 0, 1, 2, 2, 0]] * 0.98 + 0.01)
    assert greedy_collapse(lp, labels, 0) == "aab"


def test_cli_train_and_eval(tmp_path):
    from typer.testing import CliRunner

    from ctcli.cli import app

    r = CliRunner()
    out = tmp_path / "m.pt"
    res = r.invoke(
        app,
        [
            "train",
            "--spec",
            "expr",
            "--out",
            str(out),
            "--run-dir",
            str(tmp_path / "run"),
            "--data-dir",
            str(tmp_path / "data"),
            "--shards",
            "1",
            "--shard-size",
            "8",
            "--steps",
            "2",
            "--batch",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and (tmp_path / "run" / "train.log").exists()
    res = r.invoke(
        app,
        ["eval", "--model", str(out), "--spec", "expr", "--n", "6", "--seed", "100000", "--json"],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout[res.stdout.index("{") :])
    assert rep["n"] == 6 and {"greedy", "beam"} <= set(rep) and 0 <= rep["greedy"]["cer"]
    res = r.invoke(app, ["eval", "--model", str(out), "--spec", "expr", "--manifest", "x.tsv"])
    assert res.exit_code == 2
    res = r.invoke(
        app, ["eval", "--model", str(tmp_path / "nope.pt"), "--spec", "expr", "--n", "2"]
    )
    assert res.exit_code == 3


def test_cli_eval_manifest(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from ctcli.cli import app
    from ctcli.model import build_model, save_checkpoint
    from ctcli.synth.expr import ExprCaptchaGenerator

    labels = ["", *"0123456789+-*()="]
    dims = dict(n_classes=len(labels), height=32, **TINY)
    save_checkpoint(
        tmp_path / "m.pt",
        build_model("crnn", **dims),
        arch="crnn",
        dims=dims,
        kind="image",
        alphabet=labels,
        blank=0,
        features={"height": 32, "split_lines": False},
        frame_stride=2.0,
    )
    g = ExprCaptchaGenerator(123456)
    rows = []
    for i in range(3):
        s = g.sample(i)
        Image.fromarray(s.image).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png\t{s.text}\n")
    (tmp_path / "broken.png").write_bytes(b"nope")
    rows.append("broken.png\t1+1=2\n")
    (tmp_path / "m.tsv").write_text("".join(rows))
    res = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            str(tmp_path / "m.pt"),
            "--manifest",
            str(tmp_path / "m.tsv"),
            "--greedy",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout[res.stdout.index("{") :])
    assert rep["n"] == 4 and rep["failed"] == 1 and "beam" not in rep


def test_cli_train_from_manifest(tmp_path):
    from PIL import Image
    from typer.testing import CliRunner

    from ctcli.cli import app
    from ctcli.synth.expr import ExprCaptchaGenerator

    g = ExprCaptchaGenerator(654321)
    rows = []
    for i in range(12):
        s = g.sample(i)
        Image.fromarray(s.image).save(tmp_path / f"{i}.png")
        rows.append(f"{i}.png\t{s.text}\n")
    (tmp_path / "m.tsv").write_text("".join(rows))
    out = tmp_path / "m.pt"
    args = [
        "train",
        "--manifest",
        str(tmp_path / "m.tsv"),
        "--out",
        str(out),
        "--run-dir",
        str(tmp_path / "run"),
        "--data-dir",
        str(tmp_path / "data"),
        "--steps",
        "2",
        "--batch",
        "4",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    m = load_model(out)
    seen = sorted({c for r in rows for c in r.split("\t")[1].strip()})
    assert m.labels == ["", *seen] and "rerank" not in m.meta
    res = CliRunner().invoke(app, [*args[:-4], "--steps", "3", "--batch", "4", "--resume"])
    assert res.exit_code == 0, res.output
    assert load_model(out).labels == m.labels


def test_cli_gen_only_then_train_only(tmp_path):
    """A --gen-only run writes shards; a --train-only run generates none and trains on them."""
    from typer.testing import CliRunner

    from ctcli.cli import app

    base = ["train", "--spec", "expr", "--out", str(tmp_path / "m.pt"),
            "--run-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "data"),
            "--shard-size", "6", "--steps", "2", "--batch", "3"]  # fmt: skip
    r = CliRunner()
    res = r.invoke(app, [*base, "--shards", "1", "--gen-only"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "preprocess.json",
        "train-0000.npz",
        "val.npz",
    ]
    assert not (tmp_path / "m.pt").exists()
    res = r.invoke(app, [*base, "--shards", "3", "--train-only"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.pt").exists()
    assert not (tmp_path / "data" / "train-0001.npz").exists()  # nothing generated
    assert r.invoke(app, [*base, "--gen-only", "--train-only"]).exit_code == 2


def test_spec_model_sizes():
    from ctcli.train import TrainConfig, config_for

    assert config_for("expr").channels == TrainConfig().channels
    wide = config_for("textline", steps=5)
    assert wide.rnn_hidden > TrainConfig().rnn_hidden and wide.steps == 5
    assert config_for("textline", rnn_hidden=64).rnn_hidden == 64


def test_amp_context(monkeypatch):
    import contextlib

    import torch

    from ctcli.train import amp_context

    assert amp_context("cpu", "off")[1] == "fp32"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    ctx, label = amp_context("cpu", "auto")
    assert label == "bf16 autocast (cpu)" and isinstance(ctx, torch.autocast)
    with ctx:
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    ctx, label = amp_context("cpu", "bf16")
    assert label == "fp32" and isinstance(ctx, contextlib.nullcontext)
    # CUDA path without a GPU: mocked availability decides
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_context("cuda:0", "auto")[1] == "bf16 autocast (cuda)"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp_context("cuda", "auto")[1] == "fp32"
    with pytest.raises(ValueError):
        amp_context("cpu", "fp8")


def test_data_dir_keeps_its_generator_spec(tmp_path):
    from ctcli.train import data_crop

    d = tmp_path / "d"
    assert data_crop(d, "grow", "textline@2") == "grow"
    assert data_crop(d, "grow", "textline@2") == "grow"
    with pytest.raises(ValueError, match="textline@2"):
        data_crop(d, "grow", "textline@1")
    with pytest.raises(ValueError, match="textline@2"):
        make_shard("expr", SEEDS["val"], 2, 32, d / "val.npz", crop="grow")


def test_prefetch_keeps_order_errors_and_stops_early():
    import threading

    from ctcli.train import Prefetch

    with Prefetch(iter(range(50)), depth=3) as it:
        assert list(it) == list(range(50))
        assert list(it) == []  # exhausted stays exhausted

    def failing():
        yield 1
        yield 2
        raise OSError("shard unreadable")

    it = Prefetch(failing(), depth=2)
    assert next(it) == 1 and next(it) == 2
    with pytest.raises(OSError, match="shard unreadable"):  # where item 3 would come
        next(it)

    made = []

    def endless():
        for i in range(10**6):
            made.append(i)
            yield i

    before = threading.active_count()
    with Prefetch(endless(), depth=2) as it:
        assert next(it) == 0
    assert threading.active_count() == before  # the producer thread has ended
    assert len(made) <= 5  # built at most a few ahead, never the rest
    with pytest.raises(ValueError, match="at least 1"):
        Prefetch(iter([]), depth=0)
