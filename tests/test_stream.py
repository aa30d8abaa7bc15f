"""Streaming: exact features and model outputs chunk by chunk, VAD segments,
the `listen` path from a file or stdin, partials, Ctrl-C, no devices."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctcli import stream
from ctcli.audio import logmel
from tests.conftest import run_cli


def bursts(n: int = 3, speech_s: float = 0.9, gap_s: float = 0.7, seed: int = 0) -> np.ndarray:
    """Noise-modulated tones separated by near-silence: clear VAD segments."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.5 * 16000), np.float32)]
    for i in range(n):
        t = np.arange(int(speech_s * 16000)) / 16000
        tone = 0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        parts.append((tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32))
        parts.append((0.0005 * rng.standard_normal(int(gap_s * 16000))).astype(np.float32))
    return np.concatenate(parts)


def write_wave(path, wave, sr=16000):
    import soundfile as sf

    sf.write(str(path), wave, sr)
    return path


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 24000), seed=st.integers(0, 1000), cmn=st.sampled_from([0.0, 30.0]))
def test_streaming_logmel_equals_offline(n, seed, cmn):
    """Also with a running mean (cmn_prior): its state carries across pushes."""
    rng = np.random.default_rng(seed)
    w = (0.1 * rng.standard_normal(n)).astype(np.float32)
    feats = {"mean": list(rng.normal(-5, 1, 80)), "std": list(rng.uniform(1, 3, 80))}
    if cmn:
        feats["cmn_prior"] = cmn
    s = stream.StreamingLogMel(feats)
    parts, i = [], 0
    while i < n:
        k = int(rng.integers(1, 4000))
        parts.append(s.push(w[i : i + k]))
        i += k
    parts.append(s.finish())
    got = np.concatenate(parts)
    want = logmel(w, feats) if n >= 400 else None
    if want is not None:
        assert got.shape == want.shape
        assert np.abs(got - want).max() < 1e-4
    else:
        assert got.shape[0] == 1 + n // 160


@pytest.fixture(scope="module")
def tiny_asr(tiny_registry):
    from ctcli.model import load_model

    return load_model(tiny_registry / "models" / "tiny-asr.pt")


@pytest.fixture(
    scope="module",
    params=[("gru", 2, 0, 1), ("gru", 4, 0, 1), ("gru", 2, 3, 1), ("gru", 4, 1, 2),
            ("gru", 4, 3, 2, 5), ("gru", 2, 0, 1, 4),
            ("conformer", 4, 3, 1), ("conformer", 2, 1, 2)],
)  # fmt: skip
def asr_by_stride(request, tmp_path_factory):
    """Random models with x2 and x4 time subsampling (the streaming windows
    differ): GRUs without and with top-layer look-ahead (frames held back),
    two with a chunked backward layer (chunks of 5 and 4 frames, held back
    until whole, its residual projection made non-zero), conformers with
    attention chunks of 3 and 1 frames (held back until whole); one of each
    emits 2 CTC frames per encoder frame."""
    import torch

    from ctcli.model import build_model, load_model, save_checkpoint

    kind, stride, ahead, up, *back = (*request.param, 0)[:5]
    torch.manual_seed(stride + 10 * ahead)
    dims = {"n_classes": 29, "n_mels": 40, "conv_channels": 4, "time_stride": stride,
            "upsample": up}  # fmt: skip
    if kind == "gru":
        arch = "asr_conv_gru"
        dims.update(rnn_hidden=16, rnn_layers=2, lookahead=ahead, back_chunk=back[0])
    else:
        arch = "asr_conformer"
        dims.update(d_model=16, layers=2, heads=2, ff=32, kernel=5, chunk=ahead, left_chunks=2)
    model = build_model(arch, **dims)
    if back[0]:
        torch.nn.init.normal_(model.back_out.weight)  # zero at birth: would hide the layer
    path = tmp_path_factory.mktemp("asr") / f"{kind}-x{stride}-a{ahead}-u{up}-b{back[0]}.pt"
    save_checkpoint(path, model, arch=arch, dims=dims,
                    kind="audio", alphabet=["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"], blank=0,
                    features={"n_mels": 40}, frame_stride=0.01 * stride / up)  # fmt: skip
    return load_model(path)


@settings(max_examples=15, deadline=None)
@given(T=st.integers(1, 300), seed=st.integers(0, 1000))
def test_streaming_acoustic_equals_offline(asr_by_stride, T, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, 40)).astype(np.float32)
    want = asr_by_stride.log_probs([x])[0]
    m = asr_by_stride.module
    assert want.shape[0] == -(-T // m.time_stride) * m.upsample
    s = stream.StreamingAcoustic(asr_by_stride)
    parts, i = [], 0
    while i < T:
        k = int(rng.integers(1, 30))
        parts.append(s.push(x[i : i + k]))
        i += k
    parts.append(s.finish())
    got = np.concatenate(parts)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-4


@settings(max_examples=10, deadline=None)
@given(T1=st.integers(1, 120), T2=st.integers(1, 120), seed=st.integers(0, 1000))
def test_batch_padding_does_not_change_an_item(asr_by_stride, T1, T2, seed):
    """A short item batched with a longer one (padded) reads exactly as alone,
    look-ahead included: the top layer sees zeros past each item's end."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((T1, 40)).astype(np.float32)
    b = rng.standard_normal((T2, 40)).astype(np.float32)
    alone = asr_by_stride.log_probs([a])[0]
    batched = asr_by_stride.log_probs([a, b])[0]
    assert alone.shape == batched.shape and np.abs(alone - batched).max() < 1e-4


def test_vad_finds_the_bursts():
    w = bursts(3)
    segs = stream.segments_offline(w, stream.VadConfig())
    assert len(segs) == 3
    for (a, b), k in zip(segs, range(3), strict=True):
        burst_start = int((0.5 + k * 1.6) * 16000)
        assert a <= burst_start <= b


def test_speech_span_covers_first_to_last_utterance():
    w = np.concatenate([bursts(2, seed=3), np.zeros(16000, np.float32)])
    segs = stream.segments_offline(w, stream.VadConfig())
    a, b = stream.speech_span(w)
    assert len(segs) == 2 and (a, b) == (segs[0][0], segs[1][1])
    assert 0.5 * 16000 - a == pytest.approx(0.25 * 16000, abs=160)  # the VAD's pre-roll
    assert (2.1 + 0.9) * 16000 < b < w.size - 0.5 * 16000  # the trailing silence left out
    quiet = (0.0005 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    assert stream.speech_span(quiet) == (0, quiet.size)  # no speech found: the whole wave


def test_short_file_is_read_over_its_speech_span(registry_env, tmp_path):
    """A short file is decoded over the span the streaming VAD cuts (as
    `listen` and the long-audio path read it), in file time: the features
    start at the span and the word times are offset by it."""
    from pathlib import Path

    from ctcli.inputs import InputItem
    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import Pipeline, _Prepared

    w = np.concatenate([np.zeros(16000, np.float32), bursts(1, seed=4)])
    wav = write_wave(tmp_path / "late.wav", w)
    a, b = stream.speech_span(w)
    assert a > 1.2 * 16000
    p = _Prepared(InputItem(str(wav), wav, Path(wav.name)), 0)
    Pipeline(TranscribeOptions())._prepare(p)
    assert p.result is None and p.places == [(a / 16000, 1.0)]
    assert p.arrays[0].shape[0] == logmel(w[a:b], p.runner.model.meta["features"]).shape[0]
    r = run_cli(["transcribe", "-f", "jsonl", "--words", str(wav)], env=registry_env)
    assert r.returncode == 0, r.stderr
    for word in json.loads(r.stdout)["words"]:
        assert word["start"] >= a / 16000 - 1e-6


def test_stream_final_equals_offline_on_same_segments(tiny_asr):
    from ctcli.decoder import build_decoder

    dec = build_decoder(tiny_asr.labels, blank=0, beam_width=8)
    w = bursts(3, seed=1)
    finals, partials = [], []
    rec = stream.StreamRecognizer(
        tiny_asr, dec, stream.VadConfig(), lambda r: (finals if r.final else partials).append(r)
    )
    stream.run((w[i : i + 1600] for i in range(0, w.size, 1600)), rec)
    segs = stream.segments_offline(w, stream.VadConfig())
    offline = []
    for a, b in segs:
        lp = tiny_asr.log_probs([logmel(w[a:b], tiny_asr.meta["features"])])[0]
        offline.append(dec.decode(lp).text)
    assert [r.text for r in finals] == [t for t in offline if t]
    assert [round(r.start * 16000) for r in finals] == [
        a for (a, b), t in zip(segs, offline, strict=True) if t
    ]
    # partials arrive before their utterance's final line, and the first ones
    # before the utterance's audio ends (the last may cover it all while the
    # endpointer still waits for silence)
    for f in finals:
        mine = [p for p in partials if p.utterance == f.utterance]
        assert mine and min(p.end for p in mine) < f.end
        assert all(p.end <= f.end and p.wall <= f.wall for p in mine)


def test_listen_from_file_jsonl(registry_env, tmp_path):
    wav = write_wave(tmp_path / "b.wav", bursts(3, seed=2))
    p = run_cli(["listen", "--from", str(wav), "-f", "jsonl", "--words"], registry_env)
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert 1 <= len(recs) <= 3
    assert all(r["start"] < r["end"] for r in recs)
    assert [r["start"] for r in recs] == sorted(r["start"] for r in recs)
    assert b"\x1b[" not in p.stderr  # no partial redraws when stderr is not a terminal


def test_listen_from_stdin_wav_and_raw(registry_env, tmp_path):
    w = bursts(2, seed=3)
    wav = write_wave(tmp_path / "b.wav", w)
    a = run_cli(["listen", "--from", "-"], registry_env, stdin=wav.read_bytes())
    raw = (np.clip(w, -1, 1) * 32767).astype("<i2").tobytes()
    b = run_cli(["listen", "--from", "-", "--sample-rate", "16000"], registry_env, stdin=raw)
    c = run_cli(["listen", "--from", str(wav)], registry_env)
    assert a.returncode == b.returncode == c.returncode == 0
    assert a.stdout == c.stdout  # same samples, same transcript
    assert len(b.stdout.splitlines()) == len(c.stdout.splitlines())


def test_listen_ctrl_c_prints_pending_utterance(registry_env, tmp_path):
    wav = write_wave(tmp_path / "long.wav", bursts(1, speech_s=20.0, seed=4))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ctcli",
            "listen",
            "-v",
            "--from",
            str(wav),
            "--realtime",
            "--no-vad",
            "-f",
            "jsonl",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=registry_env,
        # a shell's background jobs inherit SIGINT ignored; give the child the
        # terminal default, as an interactive Ctrl-C would find it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    while b"listening" not in proc.stderr.readline():  # model loaded, audio starts flowing
        assert proc.poll() is None
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    recs = [json.loads(x) for x in out.decode().splitlines()]
    assert (
        len(recs) == 1 and 0.5 < recs[0]["end"] < 20.0
    )  # the utterance in progress, cut where Ctrl-C came


def test_list_devices_without_devices_exit_3(registry_env):
    p = run_cli(["listen", "--list-devices"], registry_env)
    if p.returncode == 0:
        pytest.skip("this machine has an audio input device")
    assert p.returncode == 3
    assert len(p.stderr.decode().strip().splitlines()) == 1


def test_long_file_segments_keep_file_time(registry_env, tmp_path):
    """A file longer than the long-audio threshold goes through VAD segments;
    word times are in file time and each cue stays inside its segment."""
    from typer.testing import CliRunner

    from ctcli.cli import app
    from ctcli.pipeline import LONG_AUDIO_S

    n = int(LONG_AUDIO_S / 1.6) + 4
    w = bursts(n, seed=5)
    wav = write_wave(tmp_path / "long.wav", w)
    r = CliRunner().invoke(
        app, ["transcribe", "-f", "jsonl", "--words", str(wav)], catch_exceptions=False
    )
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    starts = [0.5 + k * 1.6 for k in range(n)]
    assert rec["words"], rec
    for word in rec["words"]:  # every word falls inside one of the bursts (plus VAD padding)
        assert any(s - 0.3 <= word["start"] <= s + 0.9 + 0.35 for s in starts), word
    srt = CliRunner().invoke(app, ["transcribe", "-f", "srt", str(wav)], catch_exceptions=False)
    assert srt.exit_code == 0 and srt.stdout.count(" --> ") >= n // 2


def test_long_file_runs_the_network_on_one_thread(registry_env, tmp_path, monkeypatch):
    """Chunk-sized steps on torch's default thread pool made long files twice
    as slow: the long-file path runs on one thread unless --jobs says more,
    and puts the setting back afterwards."""
    import torch

    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import LONG_AUDIO_S, Pipeline

    wav = write_wave(tmp_path / "long.wav", bursts(int(LONG_AUDIO_S / 1.6) + 2, seed=6))
    seen = []
    push = stream.StreamRecognizer.push

    def spy(self, x):
        seen.append(torch.get_num_threads())
        return push(self, x)

    monkeypatch.setattr(stream.StreamRecognizer, "push", spy)
    from pathlib import Path

    from ctcli.inputs import InputItem

    before = torch.get_num_threads()
    try:
        for jobs, want in ((0, 1), (2, 2)):
            seen.clear()
            out: list = []
            failed = Pipeline(TranscribeOptions(jobs=jobs)).run(
                [InputItem(str(wav), wav, Path(wav.name))], lambda r, item, out=out: out.append(r)
            )
            assert failed == 0 and out and out[0].ok
            assert seen and set(seen) == {want}
            if jobs == 0:
                assert torch.get_num_threads() == before  # put back
    finally:
        torch.set_num_threads(before)  # --jobs 2 sets it for the process


def test_eval_speech_manifest(registry_env, tmp_path):
    from typer.testing import CliRunner

    from ctcli.cli import app

    for i in range(3):
        write_wave(tmp_path / f"u{i}.wav", bursts(1, seed=10 + i))
    (tmp_path / "m.tsv").write_text(
        "u0.wav\tHello 2 worlds\tsrc-a\nu1.wav\thello\tsrc-b\nu2.wav\tthe end\tsrc-b\n"
    )
    r = CliRunner().invoke(
        app,
        ["eval", "--model", "tiny-asr", "--manifest", str(tmp_path / "m.tsv"), "--json"],
        catch_exceptions=False,
    )
    assert r.exit_code == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["utterances"] == 3 and rep["failed"] == 0
    for mode in ("greedy", "beam"):
        by = rep["modes"][mode]
        assert set(by) == {"src-a", "src-b", "ALL"} and by["ALL"]["utts"] == 3
        assert by["ALL"]["wer"] > 0 and by["ALL"]["rtf"] > 0  # a random model cannot be right
    # without --model an audio manifest is scored with the bundled audio model
    r2 = CliRunner().invoke(
        app, ["eval", "--manifest", str(tmp_path / "m.tsv"), "--json"], catch_exceptions=False
    )
    assert r2.exit_code == 0, r2.stderr
    assert json.loads(r2.stdout)["model"] == "tiny-asr"


def test_logmel_of_a_clip_shorter_than_a_window_is_quiet():
    """A 20-ms clip gives its centred frames without a library warning on stderr."""
    import warnings

    from ctcli.audio import logmel

    wave = np.random.default_rng(0).normal(0, 0.1, 314).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feats = logmel(wave)
    assert feats.shape == (2, 80) and np.isfinite(feats).all()
