"""Unit tests of the CLI's library pieces: inputs, writers, devices, registry."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ctcli import devices, registry
from ctcli.errors import DeviceError, InputError, NoInputsError, UsageError
from ctcli.inputs import InputItem, collect, detect_kind, sniff_kind
from ctcli.pipeline import parse_hotword, write_atomic
from ctcli.results import Result, Word
from ctcli.writers import cues, make_writer


@pytest.mark.parametrize(
    "head,kind",
    [
        (b"\x89PNG\r\n\x1a\n", "image"),
        (b"\xff\xd8\xff\xe0", "image"),
        (b"GIF89a", "image"),
        (b"II*\x00", "image"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image"),
        (b"P5\n10 10\n255\n", "image"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio"),
        (b"fLaC", "audio"),
        (b"OggS", "audio"),
        (b"ID3\x04", "audio"),
        (b"\xff\xfb\x90\x00", "audio"),
        (b"hello world", None),
    ],
)
def test_sniff(head, kind):
    assert sniff_kind(head) == kind


def test_content_beats_extension(tmp_path):
    from tests.conftest import write_png

    p = write_png(tmp_path / "really_an_image.wav")
    assert detect_kind(InputItem(str(p), p, Path(p.name))) == "image"


def test_unknown_content_falls_back_to_extension_then_fails(tmp_path):
    p = tmp_path / "x.wav"
    p.write_bytes(b"not really audio")
    assert detect_kind(InputItem(str(p), p, Path(p.name))) == "audio"
    q = tmp_path / "x.doc"
    q.write_bytes(b"not really anything")
    with pytest.raises(InputError, match="unsupported"):
        detect_kind(InputItem(str(q), q, Path(q.name)))
    e = tmp_path / "e.png"
    e.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        detect_kind(InputItem(str(e), e, Path(e.name)))


def test_collect_files_from(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    lst = tmp_path / "list.txt"
    lst.write_text(f"{tmp_path / 'a.png'}\n\n{tmp_path / 'missing.png'}\n")
    items = collect([], files_from=str(lst))
    assert [i.display for i in items] == [str(tmp_path / "a.png"), str(tmp_path / "missing.png")]
    assert items[0].error is None and items[1].error
    with pytest.raises(NoInputsError):
        collect([str(tmp_path / "list.txt")][:0])
    with pytest.raises(UsageError):
        collect(["-", "-"])


def test_hotword_parsing():
    assert parse_hotword("kenlm", 5.0) == ("kenlm", 5.0)
    assert parse_hotword("new york:2.5", 5.0) == ("new york", 2.5)
    assert parse_hotword("ratio:abc", 5.0) == ("ratio:abc", 5.0)


def _result() -> Result:
    words = [
        Word("hello", 0.1, 0.5, 0.9),
        Word("world", 0.6, 1.0, 0.8),
        Word("again", 2.0, 2.4, 0.7),
    ]
    return Result(
        "a.wav",
        text="hello world again",
        score=-3.0,
        conf=0.7,
        words=words,
        kind="audio",
        duration=3.0,
    )


def test_cues_split_on_pause():
    assert cues(_result()) == [(0.1, 1.0, "hello world"), (2.0, 2.4, "again")]


def test_srt_and_vtt_timestamps():
    buf = io.StringIO()
    make_writer("srt", buf).write(_result())
    assert buf.getvalue().startswith("1\n00:00:00,100 --> 00:00:01,000\nhello world\n\n2\n")
    buf = io.StringIO()
    make_writer("vtt", buf).write(_result())
    assert "00:00:02.000 --> 00:00:02.400\nagain" in buf.getvalue()


def test_tsv_escapes_tabs_and_newlines():
    buf = io.StringIO()
    make_writer("tsv", buf).write(Result("p\tq", text="line1\nline2"))
    assert buf.getvalue() == "p\\tq\tline1\\nline2\n"


def test_json_writer_streams_valid_array():
    buf = io.StringIO()
    w = make_writer("json", buf, words=True)
    w.begin()
    w.write(_result())
    w.write(Result("bad.png", error="not a decodable image"))
    w.end()
    data = json.loads(buf.getvalue())
    assert data[1]["error"] == "not a decodable image" and len(data[0]["words"]) == 3


def test_write_atomic_leaves_no_temp_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out" / "x.txt"
    write_atomic(target, "ok\n")
    assert target.read_text() == "ok\n"

    import os

    def fail(*a):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "new\n")
    assert target.read_text() == "ok\n"
    assert [p.name for p in target.parent.iterdir()] == ["x.txt"]


# ------------------------------------------------------------------ devices


def test_device_cpu_needs_no_torch_query():
    assert devices.resolve_device("cpu") == "cpu"


def test_device_auto_picks_cuda_when_available(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert devices.resolve_device("auto") == "cuda"
    assert devices.resolve_device("cuda") == "cuda:0"
    assert devices.resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceError, match="only 2"):
        devices.resolve_device("cuda:2")


def test_device_auto_falls_back_but_explicit_cuda_fails(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError):
        devices.resolve_device("cuda:0")
    with pytest.raises(UsageError):
        devices.resolve_device("gpu")


@pytest.mark.requires_cuda
def test_model_runs_on_cuda(tiny_registry):
    from ctcli.model import load_model

    m = load_model(tiny_registry / "models" / "tiny-img.pt", device="cuda")
    import numpy as np

    out = m.log_probs([np.zeros((32, 64), np.float32)])
    assert out[0].shape[0] == 32


# ------------------------------------------------------------------ registry


def test_registry_resolves_names_and_paths(registry_env, tiny_registry):
    p = registry.resolve_model("tiny-img")
    assert p.name == "tiny-img.pt"
    assert registry.resolve_model(str(p)) == p
    assert registry.default_model("audio").name == "tiny-asr"
    from ctcli.errors import LMLoadError, ModelLoadError

    with pytest.raises(ModelLoadError):
        registry.resolve_model("does-not-exist")
    with pytest.raises(LMLoadError):
        registry.resolve_lm("does-not-exist")


def test_tidy_text():
    from ctcli.results import tidy_text

    assert tidy_text("a clan  ") == "a clan"
    assert tidy_text(" two  words ") == "two words"
    assert tidy_text("(1+2)*3=9") == "(1+2)*3=9"
    assert tidy_text("") == ""
