"""Synthetic speech: determinism, channel effects, shard format."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ctcli.synth import speech

needs_flite = pytest.mark.skipif(
    not shutil.which("flite"), reason="flite not installed (make system)"
)


def test_channel_effects_keep_length_and_range():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    wave = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    for _ in range(20):
        y = speech.apply_channel(wave, rng, speech.ChannelConfig(p_codec=0.0), [wave[:4000]])
        assert y.shape == wave.shape and y.dtype == np.float32
        assert np.all(np.abs(y) <= 1.0) and np.all(np.isfinite(y))


def test_noise_at_requested_snr():
    rng = np.random.default_rng(1)
    s = rng.standard_normal(16000).astype(np.float32)
    n = rng.standard_normal(16000).astype(np.float32)
    y = speech.add_noise(s, n, 10.0)
    snr = 10 * np.log10(np.mean(s**2) / np.mean((y - s) ** 2))
    assert abs(snr - 10.0) < 0.01


def test_telephone_band_removes_high_frequencies():
    t = np.arange(16000) / 16000
    hi = np.sin(2 * np.pi * 6000 * t).astype(np.float32)
    assert np.std(speech.band_limit(hi, 300, 3400, 8000)[2000:-2000]) < 0.01


def test_rir_is_unit_energy():
    rir = speech.synthetic_rir(np.random.default_rng(2), 0.4)
    assert abs(float(np.sum(rir**2)) - 1.0) < 1e-4


def test_held_out_voice_never_trains():
    assert all(v.id not in speech.HELD_OUT_VOICES for v in speech.training_voices())


@needs_flite
def test_render_is_deterministic():
    v = speech.Voice("flite", "kal16")
    a = speech.render_utterance(
        "one two three", v, seed=7, index=3, channel=speech.ChannelConfig(p_codec=0.0)
    )
    b = speech.render_utterance(
        "one two three", v, seed=7, index=3, channel=speech.ChannelConfig(p_codec=0.0)
    )
    c = speech.render_utterance(
        "one two three", v, seed=7, index=4, channel=speech.ChannelConfig(p_codec=0.0)
    )
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.5 < a.size / 16000 < 5


@needs_flite
def test_shards_resume_and_hold_transcripts(tmp_path, monkeypatch):
    from ctcli.synth import speechdata

    monkeypatch.setattr(speechdata, "training_voices", lambda: [speech.Voice("flite", "kal16")])
    text = tmp_path / "s.txt"
    text.write_text("The 3 dogs barked at 10:30.\nHello world again\nx\n")
    speechdata.generate(text, tmp_path / "out", shards=1, shard_size=4, seed=1)
    d = np.load(tmp_path / "out" / "shard-00000.npz")
    assert d["offsets"][-1] == d["feats"].shape[0] and d["feats"].shape[1] == 80
    assert set(d["texts"]) <= {"the three dogs barked at ten thirty", "hello world again"} | set(
        d["texts"]
    )
    assert all(set(t) <= set("abcdefghijklmnopqrstuvwxyz' ") for t in d["texts"])
    mtime = (tmp_path / "out" / "shard-00000.npz").stat().st_mtime_ns
    speechdata.generate(text, tmp_path / "out", shards=1, shard_size=4, seed=1)
    assert (tmp_path / "out" / "shard-00000.npz").stat().st_mtime_ns == mtime


def test_training_text_excludes_evaluation_transcripts(tmp_path):
    from ctcli.synth.speechdata import load_sentences

    text = tmp_path / "t.txt"
    text.write_text(
        "And so my fellow Americans, ask not.\nA quiet sentence for training.\nHe said: go forward ten meters now\n"
    )
    excl = tmp_path / "x.txt"
    excl.write_text("# comment\nand so my fellow americans ask not\ngo forward ten meters\n")
    assert load_sentences(text, exclude=excl) == ["a quiet sentence for training"]
    assert len(load_sentences(text, exclude=None)) == 3
