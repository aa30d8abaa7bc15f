"""Architectures, checkpoints, batched inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctcli.errors import ModelLoadError
from ctcli.model import build_model, load_model, save_checkpoint

LABELS = ["", *"0123456789+-*()="]
TINY = dict(n_classes=len(LABELS), height=32, channels=(4, 4, 8, 8), rnn_hidden=8, rnn_layers=2)


def _save_tiny(path, **extra):
    torch.manual_seed(0)
    m = build_model("crnn", **TINY)
    save_checkpoint(
        path,
        m,
        arch="crnn",
        dims=TINY,
        kind="image",
        alphabet=LABELS,
        blank=0,
        features={"height": 32, "split_lines": False},
        frame_stride=2.0,
        extra=extra or None,
    )
    return m


def test_crnn_shapes():
    m = build_model("crnn", **TINY).eval()
    y = m(torch.rand(3, 1, 32, 50), torch.tensor([50, 40, 7]))
    assert y.shape == (3, 25, len(LABELS))
    assert torch.allclose(y.exp().sum(-1), torch.ones(3, 25), atol=1e-5)


def test_roundtrip_and_meta(tmp_path):
    p = tmp_path / "m.pt"
    m = _save_tiny(p, default_lm="expr-char", rerank="expr", alpha=0.3)
    lm = load_model(p)
    assert lm.kind == "image" and lm.labels == LABELS and lm.blank == 0 and lm.frame_stride == 2.0
    assert (
        lm.meta["rerank"] == "expr"
        and lm.meta["features"]["height"] == 32
        and "state_dict" not in lm.meta
    )
    x = np.random.default_rng(0).random((32, 60), dtype=np.float32)
    with torch.inference_mode():
        ref = m.eval()(torch.from_numpy(x)[None, None], None)[0].numpy()
    assert np.allclose(lm.log_probs([x])[0], ref, atol=1e-5)
    # weights_only load works on the raw file
    raw = torch.load(p, weights_only=True)
    assert {
        "arch",
        "dims",
        "kind",
        "alphabet",
        "blank",
        "features",
        "frame_stride",
        "state_dict",
    } <= set(raw)


def test_log_probs_unpadded_and_batch_invariant(tmp_path):
    p = tmp_path / "m.pt"
    _save_tiny(p)
    lm = load_model(p)
    rng = np.random.default_rng(1)
    items = [rng.random((32, w), dtype=np.float32) for w in (64, 9, 130, 2, 64)]
    out = lm.log_probs(items)
    assert [o.shape for o in out] == [(w // 2, len(LABELS)) for w in (64, 9, 130, 2, 64)]
    assert all(o.dtype == np.float32 for o in out)
    # padding reaches an item only through the conv receptive field at its right edge
    # (zero = background), so alone vs in a batch agree closely
    for item, o in zip(items, out, strict=False):
        assert np.allclose(lm.log_probs([item])[0], o, atol=5e-3)
    lm.max_batch = 2
    assert all(np.allclose(a, b, atol=5e-3) for a, b in zip(lm.log_probs(items), out, strict=False))
    assert lm.log_probs([]) == []


def test_image_batches_group_similar_widths(tmp_path):
    """Lines sorted by width go into one forward batch until padding them to
    the next width would cost more than a forward call; the max batch holds."""
    from ctcli.model import GROUP_OVERHEAD_PX

    p = tmp_path / "m.pt"
    _save_tiny(p)
    lm = load_model(p)
    widths = [40, 42, 45, 400, 410, 900]
    assert lm._groups(list(range(6)), widths) == [[0, 1, 2], [3, 4], [5]]
    same = [300] * 10
    lm.max_batch = 4
    assert [len(g) for g in lm._groups(list(range(10)), same)] == [4, 4, 2]
    # one step of the rule: n items may grow by GROUP_OVERHEAD_PX / n columns
    step = GROUP_OVERHEAD_PX // 2
    assert lm._groups([0, 1, 2], [100, 100, 100 + step]) == [[0, 1, 2]]
    assert lm._groups([0, 1, 2], [100, 100, 101 + step]) == [[0, 1], [2]]


def test_load_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelLoadError):
        load_model(bad)
    torch.save({"arch": "crnn"}, tmp_path / "keys.pt")
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(tmp_path / "keys.pt")
    p = tmp_path / "m.pt"
    _save_tiny(p)
    ck = torch.load(p, weights_only=True)
    ck["dims"]["rnn_hidden"] = 16
    torch.save(ck, tmp_path / "mismatch.pt")
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model(tmp_path / "mismatch.pt")
    ck["arch"] = "nope"
    torch.save(ck, tmp_path / "arch.pt")
    with pytest.raises(ModelLoadError, match="unknown"):
        load_model(tmp_path / "arch.pt")
    for e in (ModelLoadError,):
        try:
            load_model(bad)
        except e as err:
            assert "\n" not in str(err)


def test_audio_arch_runs(tmp_path):
    dims = dict(n_classes=29, n_mels=80, conv_channels=4, rnn_hidden=16, rnn_layers=1)
    m = build_model("asr_conv_gru", **dims)
    p = tmp_path / "a.pt"
    save_checkpoint(
        p,
        m,
        arch="asr_conv_gru",
        dims=dims,
        kind="audio",
        alphabet=["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"],
        blank=0,
        features={"n_mels": 80, "sample_rate": 16000, "hop": 160},
        frame_stride=0.04,
    )
    lm = load_model(p)
    feats = [
        np.random.default_rng(0).standard_normal((t, 80)).astype(np.float32) for t in (100, 37, 1)
    ]
    out = lm.log_probs(feats)
    assert [o.shape for o in out] == [(25, 29), (10, 29), (1, 29)]
    # causal GRU: only the last frame (conv receptive field) can see the padding
    assert np.allclose(lm.log_probs([feats[1]])[0][:-1], out[1][:-1], atol=1e-4)


def test_atomic_save_leaves_no_temp(tmp_path):
    _save_tiny(tmp_path / "m.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_registry_install_bundles_a_checkpoint(tiny_registry, tmp_path, monkeypatch):
    """`python -m ctcli.registry install` copies a checkpoint into the models
    dir with new decoding defaults and updates sha256/size in the manifest."""
    import json
    import shutil

    from ctcli.registry import find_model, main

    mdir = tmp_path / "models"
    shutil.copytree(tiny_registry / "models", mdir)
    monkeypatch.setenv("CTCLI_MODELS_DIR", str(mdir))
    src = tiny_registry / "models" / "tiny-img.pt"
    assert main(["install", "new-img", str(src), "--lm", "x-char", "--alpha", "0.7"]) == 0
    entry = find_model("new-img")
    assert entry is not None and entry.verify() == "ok" and entry.kind == "image"
    m = load_model(entry.path)
    assert m.meta["default_lm"] == "x-char" and m.meta["alpha"] == 0.7
    # a tuned blank penalty travels in the checkpoint to the decoder; an option overrides it
    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import Pipeline
    from tests.conftest import REPO

    assert main(["install", "pen-img", str(src), "--blank-penalty", "0.6"]) == 0
    assert load_model(find_model("pen-img").path).meta["blank_penalty"] == 0.6
    lm = str(REPO / "lm" / "expr-char.arpa")
    # tuned with an LM, so applied with one; without one only when given
    for lm_opt, opt, want in (
        (lm, None, 0.6),
        (lm, 0.25, 0.25),
        (None, None, 0.0),
        ("none", 0.5, 0.5),
    ):
        o = TranscribeOptions(model="pen-img", lm=lm_opt, blank_penalty=opt)
        assert Pipeline(o).runner_for("image").decoder.cfg.blank_penalty == want
    run = Pipeline(TranscribeOptions(model="new-img", lm=lm)).runner_for("image")
    assert run.decoder.cfg.blank_penalty == 0.0  # none stored: none applied
    assert run.decoder.cfg.beam_width == 32 and run.decoder.cfg.pruning.token_min_logp == -5.0
    # a tuned beam width and label pruning travel likewise; --beam overrides the width
    args = ["--beam", "48", "--token-min-logp", "-8", "--beam-threshold", "14"]
    assert main(["install", "wide-beam", str(src), *args]) == 0
    ck = load_model(find_model("wide-beam").path).meta
    assert ck["beam"] == 48 and ck["pruning"] == {"token_min_logp": -8.0, "beam_threshold": 14.0}
    for opt, want in ((None, 48), (5, 5)):
        dec = Pipeline(TranscribeOptions(model="wide-beam", beam=opt)).runner_for("image").decoder
        assert dec.cfg.beam_width == want and dec.cfg.pruning.token_min_logp == -8.0
        assert dec.cfg.pruning.beam_threshold == 14.0
    assert main(["install", "tiny-img", str(src), "--beta", "1.5"]) == 0  # existing entry
    man = json.loads((mdir / "MANIFEST.json").read_text())
    old = [e for e in man["models"] if e["name"] == "tiny-img"]
    assert len(old) == 1 and old[0]["file"] == "tiny-img/model.pt" and old[0]["default"] is True
    assert find_model("tiny-img").verify() == "ok"
    # an inference stretch tuned on a dev set: the training value is kept beside it
    assert main(["install", "wide-img", str(src), "--stretch", "1.7"]) == 0
    wide = load_model(find_model("wide-img").path)
    assert wide.line_options["stretch"] == 1.7
    assert wide.meta["features"]["train_stretch"] == 1.0
    # float16 storage: about half the file, float32 weights after loading, same outputs
    assert main(["install", "half-img", str(src), "--half"]) == 0
    half, full = find_model("half-img"), find_model("tiny-img")
    assert half.verify() == "ok" and half.path.stat().st_size < 0.75 * full.path.stat().st_size
    hm, fm = load_model(half.path), load_model(full.path)
    assert all(p.dtype == torch.float32 for p in hm.module.parameters())
    x = torch.rand(2, 1, 32, 64)
    with torch.inference_mode():
        assert torch.allclose(hm.module(x), fm.module(x), atol=2e-2)


def test_registry_install_averages_checkpoints(tiny_registry, tmp_path, monkeypatch):
    """--average: the bundled weights are the mean of the checkpoints' (float
    tensors), and a checkpoint of another network is refused."""
    import shutil

    from ctcli.registry import find_model, main

    mdir = tmp_path / "models"
    shutil.copytree(tiny_registry / "models", mdir)
    monkeypatch.setenv("CTCLI_MODELS_DIR", str(mdir))
    src = tiny_registry / "models" / "tiny-img.pt"
    a = torch.load(src, map_location="cpu", weights_only=True)
    b = {**a, "state_dict": {k: v + 1 if v.is_floating_point() else v
                             for k, v in a["state_dict"].items()}}  # fmt: skip
    torch.save(b, tmp_path / "b.pt")
    assert main(["install", "avg-img", str(src), "--average", str(tmp_path / "b.pt")]) == 0
    got = torch.load(find_model("avg-img").path, map_location="cpu", weights_only=True)
    for k, v in a["state_dict"].items():
        want = v + 0.5 if v.is_floating_point() else v
        assert torch.allclose(got["state_dict"][k], want, atol=1e-6), k
    other = {**a, "dims": {**a["dims"], "rnn_hidden": 99}}
    torch.save(other, tmp_path / "other.pt")
    with pytest.raises(ModelLoadError, match="not the same network"):
        main(["install", "bad-img", str(src), "--average", str(tmp_path / "other.pt")])


def test_crnn_reads_a_line_the_same_alone_or_in_a_padded_batch():
    """BatchNorm makes zero padding non-zero; without the per-block width mask
    a line's last frames (its trailing punctuation) changed with the width of
    whatever it was batched with."""
    import numpy as np
    import torch

    from ctcli.model import CRNN

    torch.manual_seed(0)
    net = CRNN(n_classes=7, height=32, channels=(4, 4, 8, 8), rnn_hidden=8).eval()
    for m in net.modules():  # non-trivial running statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    rng = np.random.default_rng(0)
    widths = [37, 64, 90, 41, 128]
    lines = [torch.from_numpy(rng.random((32, w), dtype=np.float32)) for w in widths]
    x = torch.zeros(len(lines), 1, 32, max(widths))
    for j, a in enumerate(lines):
        x[j, 0, :, : a.shape[1]] = a
    with torch.inference_mode():
        batch = net(x, torch.tensor(widths))
        for j, a in enumerate(lines):
            alone = net(a[None, None], torch.tensor([a.shape[1]]))[0]
            t = a.shape[1] // 2
            assert torch.allclose(batch[j, :t], alone[:t], atol=1e-5), widths[j]


def test_crnn_training_forward_masks_the_padding():
    """Training calls the CRNN with widths and pack=False: the CNN masks each
    item's zero padding (which BatchNorm makes non-zero), so a short item's
    features are those it has alone; without widths they are not."""
    import torch

    from ctcli.model import CRNN

    torch.manual_seed(1)
    net = CRNN(n_classes=7, height=32, channels=(4, 4, 8, 8), rnn_hidden=8).eval()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.bias.data.uniform_(-1, 1)
    widths = torch.tensor([96, 40])
    x = torch.rand(2, 1, 32, 96)
    x[1, :, :, 40:] = 0
    t = 40 // 2
    with torch.inference_mode():
        alone = net.cnn(x[1:2, :, :, :40])[0]
        masked = net._cnn_masked(x, widths)[1, ..., :t]
        unmasked = net.cnn(x)[1, ..., :t]
        assert torch.allclose(masked, alone, atol=1e-6)
        assert not torch.allclose(unmasked, alone, atol=1e-3)
        a = net(x, widths, pack=False)
        assert torch.allclose(a[0], net(x[:1])[0], atol=1e-6)  # the unpadded item
        assert a.shape == net(x, widths).shape == (2, 48, 7)


def test_backward_chunks_see_the_rest_of_their_chunk_only():
    """ConvGRU.back: frame t hears frames t .. the end of its chunk of
    back_chunk frames (counted from the start), nothing before t and nothing
    in a later chunk; a padded batch reads each item as alone."""
    import torch

    from ctcli.model import build_model

    torch.manual_seed(0)
    m = build_model("asr_conv_gru", n_classes=29, n_mels=40, conv_channels=4, rnn_hidden=8,
                    rnn_layers=1, back_chunk=4).eval()  # fmt: skip
    torch.nn.init.normal_(m.back_out.weight)
    a = torch.randn(1, 11, 8)
    with torch.no_grad():
        y = m.back(a)
        for j in range(11):
            b = a.clone()
            b[0, j] += 1.0
            changed = (m.back(b) - y).abs().amax(-1)[0] > 1e-6
            chunk = j // 4
            want = [(i // 4 == chunk and i <= j) for i in range(11)]
            assert changed.tolist() == want, j
        # an item padded in a batch reads as alone, its last (short) chunk included
        long = torch.randn(1, 11, 8)
        batch = torch.cat([torch.nn.functional.pad(a[:, :6], (0, 0, 0, 5)), long])
        got = m.back(batch, torch.tensor([6, 11]))
        assert torch.allclose(got[0, :6], m.back(a[:, :6])[0], atol=1e-6)
        assert torch.allclose(got[1], m.back(long)[0], atol=1e-6)
    with pytest.raises(ValueError, match="whole chunks"):
        m.top(a)  # the look-ahead alone would skip the backward layer


def test_running_mean_normalisation_is_causal_and_resumable():
    from ctcli.audio import normalize

    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((60, 4)) + 5).astype(np.float32)
    f = {"mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 2.0, 2.0, 2.0]}
    glob = normalize(x, f)
    assert np.allclose(glob, (x - np.array(f["mean"])) / 2)
    f["cmn_prior"] = 10.0
    whole = normalize(x, f)
    for t in (0, 7, 59):
        m = (10 * np.array(f["mean"]) + x[: t + 1].sum(0)) / (10 + t + 1)
        assert np.allclose(whole[t], (x[t] - m) / 2, atol=1e-5)
    assert np.allclose(normalize(x[:25], f), whole[:25])  # causal: a prefix reads the same
    state: dict = {}
    parts = [normalize(x[i:j], f, state) for i, j in ((0, 1), (1, 30), (30, 30), (30, 60))]
    assert np.allclose(np.concatenate(parts), whole, atol=1e-6)
    # a constant offset (a channel's colour) fades out; the global mean keeps it
    off = normalize(x + 4.0, f)
    assert np.abs(off - whole)[-10:].max() < 0.5 * np.abs(glob + 2.0 - glob).max()
