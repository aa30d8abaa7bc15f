"""Image routing: with no --model, captchas stay with the self-checking
captcha model and other images go to the general image model."""

from __future__ import annotations

import json
import shutil

import cv2
import pytest

from ctcli.registry import sha256_file
from tests.conftest import REPO, write_png

PRINTABLE = ["", *(chr(c) for c in range(32, 127))]


@pytest.fixture()
def routed_registry(tmp_path, monkeypatch):
    """The bundled ocr-expr (route: expr-check) next to a tiny random general model."""
    import torch

    from ctcli.model import build_model, save_checkpoint

    mdir = tmp_path / "models"
    (mdir / "ocr-expr").mkdir(parents=True)
    shutil.copy(REPO / "models" / "ocr-expr" / "model.pt", mdir / "ocr-expr" / "model.pt")
    torch.manual_seed(0)
    dims = {"n_classes": len(PRINTABLE), "height": 32, "channels": [4, 4, 8, 8],
            "rnn_hidden": 8, "rnn_layers": 1}  # fmt: skip
    save_checkpoint(mdir / "general.pt", build_model("crnn", **dims), arch="crnn", dims=dims,
                    kind="image", alphabet=PRINTABLE, blank=0,
                    features={"height": 32, "split_lines": True}, frame_stride=2.0)  # fmt: skip
    models = [
        {"name": "ocr-expr", "kind": "image", "file": "ocr-expr/model.pt", "route": "expr-check"},
        {"name": "general", "kind": "image", "file": "general.pt", "default": True},
    ]
    for m in models:
        m["sha256"] = sha256_file(mdir / m["file"])
    (mdir / "MANIFEST.json").write_text(json.dumps({"models": models}))
    ldir = tmp_path / "lm"
    shutil.copytree(REPO / "lm", ldir)
    monkeypatch.setenv("CTCLI_MODELS_DIR", str(mdir))
    monkeypatch.setenv("CTCLI_LM_DIR", str(ldir))
    return tmp_path


def _captchas(tmp_path, n):
    from ctcli.synth.expr import ExprCaptchaGenerator

    gen = ExprCaptchaGenerator(100000)
    out = []
    for i in range(n):
        s = gen.sample(i)
        p = tmp_path / f"cap{i}.png"
        cv2.imwrite(str(p), s.image[:, :, ::-1])
        out.append((p, s.text))
    return out


def _transcribe(args):
    from typer.testing import CliRunner

    from ctcli.cli import app

    r = CliRunner().invoke(app, ["transcribe", "-f", "jsonl", *args])
    assert r.exit_code == 0, r.output
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_captchas_and_text_lines_go_to_their_models(routed_registry):
    caps = _captchas(routed_registry, 6)
    text = write_png(routed_registry / "line.png", "Hello, world", width=260, height=48)
    recs = _transcribe([str(p) for p, _ in caps[:3]] + [str(text)] + [str(p) for p, _ in caps[3:]])
    models = [r["model"] for r in recs]
    assert models[3] == "general"
    read = [r for r in recs if r["model"] == "ocr-expr"]
    assert len(read) >= 5  # a captcha whose reading fails the check goes to the general model
    truth = dict((str(p), t) for p, t in caps)
    assert sum(r["text"] == truth[r["path"]] for r in read) >= len(read) - 1


def test_explicit_model_disables_routing(routed_registry):
    text = write_png(routed_registry / "line.png", "Hello, world", width=260, height=48)
    recs = _transcribe(["--model", "ocr-expr", str(text)])
    assert recs[0]["model"] == "ocr-expr"


def test_greedy_routing(routed_registry):
    caps = _captchas(routed_registry, 3)
    text = write_png(routed_registry / "line.png", "Hello, world", width=260, height=48)
    recs = _transcribe(["--greedy", str(text), *(str(p) for p, _ in caps)])
    assert recs[0]["model"] == "general"
    assert sum(r["model"] == "ocr-expr" for r in recs[1:]) >= 2


def test_route_check_needs_an_operator_confidence_and_a_captcha_shape():
    """Printed words read by the captcha model can spell a correct sum by
    chance (`2=2`, a low-confidence `4-1=3`) or be far wider than a captcha:
    none of those may route an image to the captcha model."""
    import numpy as np

    from ctcli.decoder import DecodeResult, Hypothesis
    from ctcli.pipeline import ROUTE_MAX_ASPECT, ROUTE_MIN_CONF, _checks

    def dec(text, conf=0.9, nbest=()):
        return [
            DecodeResult(text, -5.0, conf, nbest=[Hypothesis(t, -6.0, -6.0, 0.0) for t in nbest])
        ]

    line = [np.zeros((32, 120), np.float32)]
    assert _checks(dec("4-1=3"), line)
    assert _checks(dec("(1-3)*3=-6"), line)
    assert _checks(dec("4-1=2", nbest=["4-1=3"]), line)  # an n-best entry as read
    assert not _checks(dec("4-1=2"), line)  # wrong result
    assert not _checks(dec("2=2"), line) and not _checks(dec("-3=-3"), line)  # no operator
    assert not _checks(dec("4-1=3", conf=ROUTE_MIN_CONF / 2), line)
    wide = [np.zeros((32, int(32 * ROUTE_MAX_ASPECT) + 8), np.float32)]
    assert not _checks(dec("4-1=3"), wide)
    assert _checks(dec("4-1=3"), wide, stretch=1.7)  # the same captcha widened by the model
    assert not _checks(dec("4-1=3") * 2, line)  # two lines
