"""Fuzz: random bytes and truncated real files under audio and image
extensions. Every one either transcribes or fails with exactly one clean
error line, and the exit code says which."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ctcli.cli import app
from tests.conftest import write_png, write_wav

runner = CliRunner()
EXTS = [".wav", ".flac", ".mp3", ".ogg", ".png", ".jpg", ".bmp", ".tif"]
ERROR_LINE = re.compile(r"^ctcli: error: .+: \S.*$")


def _check_one(path) -> None:
    r = runner.invoke(app, ["transcribe", "-f", "jsonl", str(path)], catch_exceptions=False)
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert "Traceback" not in r.stderr
    assert r.exit_code in (0, 1), (path, r.exit_code, r.stderr)
    if r.exit_code == 0:
        assert err == [] and r.stdout.count("\n") == 1
    else:
        assert len(err) == 1 and ERROR_LINE.match(err[0]), err
        assert '"error": "' in r.stdout  # the jsonl error record


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=0, max_size=3000), ext=st.sampled_from(EXTS))
def test_random_bytes(registry_env, tmp_path, data, ext):
    p = tmp_path / f"fuzz{ext}"
    p.write_bytes(data)
    _check_one(p)


@pytest.fixture(scope="module")
def real_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    files = [
        write_png(d / "a.png"),
        write_png(d / "b.jpg"),
        write_png(d / "c.bmp"),
        write_wav(d / "d.wav"),
    ]
    import soundfile as sf

    wave, sr = sf.read(str(files[-1]))
    sf.write(str(d / "e.flac"), wave, sr)
    sf.write(str(d / "f.ogg"), wave, sr)
    files += [d / "e.flac", d / "f.ogg"]
    return [(f.suffix, f.read_bytes()) for f in files]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(idx=st.integers(0, 5), frac=st.floats(0.0, 0.999), flip=st.integers(0, 255))
def test_truncated_and_damaged_real_files(registry_env, tmp_path, real_files, idx, frac, flip):
    ext, blob = real_files[idx]
    cut = bytearray(blob[: int(len(blob) * frac)])
    if len(cut) > 40:
        cut[len(cut) // 2] ^= flip  # also damage a byte inside
    p = tmp_path / f"trunc{ext}"
    p.write_bytes(bytes(cut))
    _check_one(p)
