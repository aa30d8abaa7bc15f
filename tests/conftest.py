"""Shared fixtures: tiny random-init models in a temporary registry, and
small audio/image inputs made on the fly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
IMG_ALPHABET = ["", *"0123456789+-*()="]
ASR_ALPHABET = ["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    """A models dir with a tiny image model and a tiny audio model, both
    random-init, plus an empty LM dir."""
    import torch

    from ctcli.model import build_model, save_checkpoint
    from ctcli.registry import sha256_file

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("registry")
    mdir, ldir = root / "models", root / "lm"
    mdir.mkdir()
    ldir.mkdir()
    img_dims = {
        "n_classes": len(IMG_ALPHABET),
        "height": 32,
        "channels": [4, 4, 8, 8],
        "rnn_hidden": 8,
        "rnn_layers": 1,
    }
    img = build_model("crnn", **img_dims)
    save_checkpoint(
        mdir / "tiny-img.pt",
        img,
        arch="crnn",
        dims=img_dims,
        kind="image",
        alphabet=IMG_ALPHABET,
        blank=0,
        features={"height": 32},
        frame_stride=2.0,
    )
    asr_dims = {
        "n_classes": len(ASR_ALPHABET),
        "n_mels": 40,
        "conv_channels": 4,
        "rnn_hidden": 16,
        "rnn_layers": 1,
        "time_stride": 2,
    }
    asr = build_model("asr_conv_gru", **asr_dims)
    with torch.no_grad():  # a random model that rarely prefers blank: transcripts are never empty
        asr.head.bias[0] -= 3.0
    save_checkpoint(
        mdir / "tiny-asr.pt",
        asr,
        arch="asr_conv_gru",
        dims=asr_dims,
        kind="audio",
        alphabet=ASR_ALPHABET,
        blank=0,
        features={
            "type": "logmel",
            "sample_rate": 16000,
            "n_mels": 40,
            "n_fft": 400,
            "hop": 160,
            "fmin": 20.0,
            "fmax": 7600.0,
        },
        frame_stride=0.02,
    )
    manifest = {
        "models": [
            {
                "name": "tiny-img",
                "kind": "image",
                "file": "tiny-img.pt",
                "alphabet": "".join(IMG_ALPHABET),
                "default": True,
            },
            {
                "name": "tiny-asr",
                "kind": "audio",
                "file": "tiny-asr.pt",
                "alphabet": "".join(ASR_ALPHABET),
                "default": True,
            },
        ]
    }
    for m in manifest["models"]:
        f = mdir / m["file"]
        m["sha256"] = sha256_file(f)
        m["size"] = f.stat().st_size
    (mdir / "MANIFEST.json").write_text(json.dumps(manifest))
    (ldir / "MANIFEST.json").write_text(json.dumps({"lms": []}))
    return root


@pytest.fixture()
def registry_env(tiny_registry, monkeypatch) -> dict:
    """Point ctcli at the tiny registry, in-process and for subprocesses."""
    env = {
        "CTCLI_MODELS_DIR": str(tiny_registry / "models"),
        "CTCLI_LM_DIR": str(tiny_registry / "lm"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NO_COLOR", raising=False)
    return {**os.environ, **env}


def write_png(path: Path, text: str = "1+2=3", width: int = 200, height: int = 64) -> Path:
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(img, text, (8, height - 18), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    ext = (
        path.suffix.lower()
        if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
        else ".png"
    )
    ok, buf = cv2.imencode(ext, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def write_wav(
    path: Path, seconds: float = 1.0, sr: int = 22050, channels: int = 2, seed: int = 0
) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data.astype(np.float32), sr)
    return path


def run_cli(
    args: list[str], env: dict, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """ctcli in a real subprocess, stdout/stderr piped."""
    return subprocess.run(
        [sys.executable, "-m", "ctcli", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
