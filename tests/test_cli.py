"""The command line: formats, inputs, errors, exit codes, pipes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctcli.cli import app
from tests.conftest import REPO, run_cli, write_png, write_wav

runner = CliRunner()


def invoke(args: list[str], **kw):
    return runner.invoke(app, args, catch_exceptions=False, **kw)


@pytest.fixture()
def batch(tmp_path) -> list[Path]:
    files = [write_png(tmp_path / f"img{i}.png", f"{i}+{i}={2 * i}") for i in range(3)]
    files.append(write_wav(tmp_path / "a.wav"))
    return files


def test_txt_one_line_per_input(registry_env, batch):
    r = invoke(["transcribe", "--greedy", *map(str, batch)])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == len(batch)


def test_tsv_paths_in_input_order(registry_env, batch):
    r = invoke(["transcribe", "-f", "tsv", *map(str, reversed(batch))])
    assert r.exit_code == 0
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [
        str(p) for p in reversed(batch)
    ]


def test_jsonl_schema_with_words(registry_env, batch):
    r = invoke(["transcribe", "-f", "jsonl", "--words", *map(str, batch)])
    assert r.exit_code == 0
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(recs) == len(batch)
    for rec, path in zip(recs, batch, strict=True):
        assert {"path", "text", "score", "conf", "words", "model", "error"} <= rec.keys()
        assert rec["path"] == str(path) and rec["error"] is None
        assert 0.0 <= rec["conf"] <= 1.0
        for w in rec["words"]:
            assert w["start"] <= w["end"] and 0.0 <= w["conf"] <= 1.0
    assert recs[0]["model"] == "tiny-img" and recs[-1]["model"] == "tiny-asr"


def test_json_is_one_array(registry_env, batch):
    r = invoke(["transcribe", "-f", "json", *map(str, batch)])
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert [d["path"] for d in data] == [str(p) for p in batch]


@pytest.mark.parametrize("fmt,head", [("srt", "1\n00:00:"), ("vtt", "WEBVTT")])
def test_subtitles_for_audio(registry_env, tmp_path, fmt, head, monkeypatch):
    wav = write_wav(tmp_path / "s.wav", seconds=2.0)
    r = invoke(["transcribe", "-f", fmt, str(wav)])
    assert r.exit_code == 0
    assert r.stdout == "" or r.stdout.startswith(head)


def test_subtitles_refused_for_images(registry_env, tmp_path):
    png = write_png(tmp_path / "x.png")
    r = invoke(["transcribe", "-f", "srt", str(png)])
    assert r.exit_code == 2
    assert "audio only" in r.stderr


def test_unknown_format_is_usage_error(registry_env, tmp_path):
    r = invoke(["transcribe", "-f", "xml", str(write_png(tmp_path / "x.png"))])
    assert r.exit_code == 2


def test_directory_recursive_sorted(registry_env, tmp_path):
    write_png(tmp_path / "d" / "b.png")
    write_png(tmp_path / "d" / "a.png")
    write_png(tmp_path / "d" / "sub" / "c.png")
    (tmp_path / "d" / "notes.txt").write_text("not an input")
    flat = invoke(["transcribe", "-f", "tsv", str(tmp_path / "d")])
    deep = invoke(["transcribe", "-f", "tsv", "-r", str(tmp_path / "d")])
    assert [Path(x.split("\t")[0]).name for x in flat.stdout.splitlines()] == ["a.png", "b.png"]
    assert [Path(x.split("\t")[0]).name for x in deep.stdout.splitlines()] == [
        "a.png",
        "b.png",
        "c.png",
    ]


def test_empty_directory_exit_4(registry_env, tmp_path):
    (tmp_path / "empty").mkdir()
    r = invoke(["transcribe", "-r", str(tmp_path / "empty")])
    assert r.exit_code == 4
    assert r.stdout == ""


def test_corrupt_file_in_middle_of_batch(registry_env, tmp_path):
    files = [write_png(tmp_path / f"{i}.png") for i in range(5)]
    files[2].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    r = invoke(["transcribe", "-f", "tsv", *map(str, files)])
    assert r.exit_code == 1
    out = r.stdout.splitlines()
    assert [line.split("\t")[0] for line in out] == [str(f) for i, f in enumerate(files) if i != 2]
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"ctcli: error: {files[2]}:")


def test_error_record_in_jsonl(registry_env, tmp_path):
    good = write_png(tmp_path / "good.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    r = invoke(["transcribe", "-f", "jsonl", str(good), str(empty), str(tmp_path / "missing.wav")])
    assert r.exit_code == 1
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["error"] is None for rec in recs] == [True, False, False]
    assert recs[1]["text"] is None


def test_wrong_type_file(registry_env, tmp_path):
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    r = invoke(["transcribe", str(txt)])
    assert r.exit_code == 1
    assert "unsupported input type" in r.stderr


def test_model_kind_mismatch_is_per_item(registry_env, tmp_path):
    r = invoke(
        [
            "transcribe",
            "--model",
            "tiny-img",
            str(write_wav(tmp_path / "a.wav")),
            str(write_png(tmp_path / "b.png")),
        ]
    )
    assert r.exit_code == 1
    assert "reads image input, this is audio" in r.stderr
    assert len(r.stdout.splitlines()) == 1


def test_unknown_model_exit_3(registry_env, tmp_path):
    r = invoke(["transcribe", "--model", "nope", str(write_png(tmp_path / "b.png"))])
    assert r.exit_code == 3


def test_output_dir_and_skip_existing(registry_env, tmp_path, monkeypatch):
    src = tmp_path / "in"
    write_png(src / "x.png")
    write_png(src / "sub" / "y.png")
    out = tmp_path / "out"
    r1 = invoke(["transcribe", "-r", str(src), "-o", str(out), "-f", "jsonl"])
    assert r1.exit_code == 0 and r1.stdout == ""
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == ["sub/y.jsonl", "x.jsonl"]
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")}

    import ctcli.model

    def boom(*a, **k):
        raise AssertionError("the second run must not load a model")

    monkeypatch.setattr(ctcli.model, "load_model", boom)
    r2 = invoke(["transcribe", "-r", str(src), "-o", str(out), "-f", "jsonl", "--skip-existing"])
    assert r2.exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jsonl")} == mtimes
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_device_cuda_without_gpu_exit_3(registry_env, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = invoke(["transcribe", "--device", "cuda", str(write_png(tmp_path / "b.png"))])
    assert r.exit_code == 3
    assert r.stderr.strip().count("\n") == 0 and "CUDA is not available" in r.stderr


def test_bad_device_spec_usage(registry_env, tmp_path):
    r = invoke(["transcribe", "--device", "tpu", str(write_png(tmp_path / "b.png"))])
    assert r.exit_code == 2


def test_models_lists_and_verifies(registry_env, tiny_registry):
    r = invoke(["models", "-f", "json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert {row["name"] for row in rows} == {"tiny-img", "tiny-asr"}
    assert all(row["status"] == "ok" for row in rows)


def test_models_checksum_mismatch_exit_3(tmp_path, tiny_registry, monkeypatch):
    import shutil

    mdir = tmp_path / "models"
    shutil.copytree(tiny_registry / "models", mdir)
    with open(mdir / "tiny-img.pt", "ab") as f:
        f.write(b"tampered")
    monkeypatch.setenv("CTCLI_MODELS_DIR", str(mdir))
    monkeypatch.setenv("CTCLI_LM_DIR", str(tiny_registry / "lm"))
    r = invoke(["models"])
    assert r.exit_code == 3
    assert "mismatch" in r.stderr
    r2 = invoke(["transcribe", "--model", "tiny-img", str(write_png(tmp_path / "b.png"))])
    assert r2.exit_code == 3


# ------------------------------------------------------------ real subprocesses


def test_stdin_dash(registry_env, tmp_path):
    png = write_png(tmp_path / "x.png")
    p = run_cli(["transcribe", "-f", "tsv", "--greedy", "-"], registry_env, stdin=png.read_bytes())
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().split("\t")[0] == "-"


def test_files_from_stdin(registry_env, tmp_path):
    files = [write_png(tmp_path / f"{i}.png") for i in range(2)] + [write_wav(tmp_path / "z.wav")]
    listing = "\n".join(map(str, files)).encode() + b"\n"
    p = run_cli(["transcribe", "-f", "tsv", "--files-from", "-"], registry_env, stdin=listing)
    assert p.returncode == 0, p.stderr
    assert [line.split("\t")[0] for line in p.stdout.decode().splitlines()] == list(map(str, files))


def test_head_1_ends_quietly(registry_env, tmp_path):
    files = [str(write_png(tmp_path / f"{i}.png")) for i in range(40)]
    cmd = f"{sys.executable} -m ctcli transcribe --batch-size 1 {' '.join(files)} | head -1"
    p = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd],
        capture_output=True,
        env=registry_env,
        timeout=120,
        check=False,
    )
    assert len(p.stdout.decode().splitlines()) == 1
    assert b"Traceback" not in p.stderr and b"Error" not in p.stderr, p.stderr
    assert p.returncode == 0


def test_no_ansi_when_piped(registry_env, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    p = run_cli(["transcribe", "-v", str(write_png(tmp_path / "x.png")), str(bad)], registry_env)
    assert p.returncode == 1
    assert b"\x1b[" not in p.stdout and b"\x1b[" not in p.stderr
    p2 = run_cli(["transcribe", "--no-such-option"], registry_env)
    assert p2.returncode == 2 and b"\x1b[" not in p2.stderr


def test_result_text_is_not_markup(registry_env, tmp_path, monkeypatch):
    """A transcript like '[music] [1]' must reach stdout unchanged."""
    from ctcli import pipeline

    orig = pipeline.Pipeline._assemble

    def fake(self, runner, p, decoded, log_probs):
        r = orig(self, runner, p, decoded, log_probs)
        r.text = "[music] [1] [bold]x[/bold]"
        return r

    monkeypatch.setattr(pipeline.Pipeline, "_assemble", fake)
    r = invoke(["transcribe", str(write_png(tmp_path / "x.png"))])
    assert r.stdout == "[music] [1] [bold]x[/bold]\n"


def test_help_is_light():
    """--help must not import torch, cv2, librosa or kenlm."""
    code = (
        "import sys\nfrom ctcli.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'cv2', 'librosa', 'kenlm', 'numba') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=60, check=False
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().strip().splitlines()[-1] == "HEAVY="


def test_huge_image_is_refused_with_one_line(registry_env, tmp_path):
    """A PNG whose header claims 100,000 x 100,000 pixels is refused before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )
    big = tmp_path / "huge.png"
    big.write_bytes(png)
    good = write_png(tmp_path / "ok.png")
    r = invoke(["transcribe", "-f", "tsv", str(big), str(good)])
    assert r.exit_code == 1
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and str(big) in err[0]
    assert r.stdout.startswith(str(good))


def test_files_from_with_non_utf8_name(registry_env, tmp_path):
    name = tmp_path / "caf\udce9.png"  # a Latin-1 byte in the file name
    import os

    raw = os.fsencode(name)
    with open(raw, "wb") as f:
        f.write(write_png(tmp_path / "src.png").read_bytes())
    listing = tmp_path / "list.txt"
    listing.write_bytes(raw + b"\n")
    r = invoke(["transcribe", "-f", "jsonl", "--files-from", str(listing)])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["error"] is None


def test_silent_audio_is_reported_and_the_batch_goes_on(registry_env, tmp_path):
    import numpy as np
    import soundfile as sf

    good = write_wav(tmp_path / "good.wav")
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), np.zeros(16000, np.float32), 16000)
    r = invoke(["transcribe", "-f", "tsv", str(silent), str(good)])
    assert r.exit_code == 1
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(good)]
    err = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and "silent audio" in err[0] and str(silent) in err[0]


def test_blank_penalty_and_beam_options_reach_the_decoder(registry_env, tmp_path, monkeypatch):
    import ctcli.decoder

    seen = []
    real = ctcli.decoder.build_decoder

    def spy(*a, **kw):
        seen.append((kw.get("blank_penalty"), kw.get("beam_width")))
        return real(*a, **kw)

    monkeypatch.setattr(ctcli.decoder, "build_decoder", spy)
    wav = write_wav(tmp_path / "s.wav", seconds=1.0)
    # the test model stores neither: no penalty, the default beam of 32
    for extra, want in (
        ([], (0.0, 32)),
        (["--blank-penalty", "0.75"], (0.75, 32)),
        (["--beam", "9"], (0.0, 9)),
    ):
        r = invoke(["transcribe", "-f", "tsv", *extra, str(wav)])
        assert r.exit_code == 0 and r.stdout.startswith(str(wav))
        assert seen[-1] == want
