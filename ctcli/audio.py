"""Audio: decode (any rate, any channel count) -> mono float32 -> log-mel.

Feature parameters come from the model checkpoint (`meta["features"]`) so
training and inference cannot drift. soundfile/librosa are imported lazily.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from ctcli.errors import InputError

SAMPLE_RATE = 16_000  # Hz, every model's input rate
MAX_SECONDS = 4 * 3600  # refuse absurdly long single inputs (streaming handles endless audio)

# Defaults for a log-mel front end; checkpoints carry their own copy.
DEFAULT_FEATURES = {
    "type": "logmel",
    "sample_rate": SAMPLE_RATE,
    "n_mels": 80,
    "n_fft": 400,  # samples, 25 ms
    "hop": 160,  # samples, 10 ms
    "fmin": 20.0,
    "fmax": 7600.0,
}


SILENT_PEAK = 1e-4  # -80 dBFS, below a 16-bit file's third-lowest level: digital silence


def decode_audio(data: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Bytes of WAV/FLAC/OGG/MP3/... -> mono float32 at `sample_rate`."""
    if not data:
        raise InputError("empty input")
    import soundfile as sf

    try:
        wave, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception:
        wave, sr = ffmpeg_decode(data)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if wave.size == 0:
        raise InputError("audio holds no samples")
    if wave.size / sr > MAX_SECONDS:
        raise InputError(
            f"audio longer than {MAX_SECONDS // 3600} h; use 'ctcli listen --from FILE'"
        )
    if not np.all(np.isfinite(wave)):
        raise InputError("audio holds non-finite samples")
    if float(np.abs(wave).max()) < SILENT_PEAK:
        raise InputError("silent audio: no sample above -80 dBFS")
    if sr != sample_rate:
        import soxr

        wave = soxr.resample(wave, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)


def ffmpeg_decode(data: bytes) -> tuple[np.ndarray, int]:
    """Any format ffmpeg reads (the fallback for what libsndfile cannot, e.g.
    MP3 on old builds, M4A) as float32 [n, 1] mono at SAMPLE_RATE; InputError
    when ffmpeg is missing or fails."""
    import shutil
    import subprocess

    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise InputError("not a decodable audio file")
    proc = subprocess.run(
        [
            ffmpeg,
            "-v",
            "quiet",
            "-i",
            "pipe:0",
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            str(SAMPLE_RATE),
            "pipe:1",
        ],
        input=data,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise InputError("not a decodable audio file")
    return np.frombuffer(proc.stdout, dtype=np.float32).reshape(-1, 1), SAMPLE_RATE


def logmel(wave: np.ndarray, features: dict | None = None) -> np.ndarray:
    """float32 [T, n_mels] natural-log mel energies."""
    import librosa

    f = {**DEFAULT_FEATURES, **(features or {})}
    with warnings.catch_warnings():
        # a clip shorter than one window (25 ms) still gives its centred frames;
        # librosa's warning about it would be noise on the user's stderr
        warnings.filterwarnings("ignore", message="n_fft=.*too large", category=UserWarning)
        mel = librosa.feature.melspectrogram(
            y=wave,
            sr=f["sample_rate"],
            n_fft=f["n_fft"],
            hop_length=f["hop"],
            win_length=f["n_fft"],
            n_mels=f["n_mels"],
            fmin=f["fmin"],
            fmax=f["fmax"],
            power=2.0,
            center=True,
        )
    return normalize(np.log(mel + 1e-6).T.astype(np.float32), f)


def normalize(feats: np.ndarray, features: dict, state: dict | None = None) -> np.ndarray:
    """Mean/variance normalisation with the statistics a model was trained
    with (`features["mean"]`, `features["std"]`, one per mel bin); unchanged
    when the checkpoint has none.

    With `features["cmn_prior"]` = k > 0, the mean subtracted from frame t is
    a running one, the frames so far pooled with k frames' worth of the global
    mean: m_t = (k * mean + x_0 + ... + x_t) / (k + t + 1). That removes the
    recording's own channel and level (a telephone line, a microphone's
    colour) as the utterance goes on, where the global mean cannot. Causal
    either way: `state` (a dict, empty at the start of a stream) carries the
    running sum from one call to the next, so frames pushed in pieces come out
    as the whole utterance's do."""
    if "mean" not in features:
        return feats
    mean = np.asarray(features["mean"], np.float32)
    std = np.asarray(features["std"], np.float32)
    k = float(features.get("cmn_prior", 0.0))
    if k <= 0 or feats.shape[0] == 0:
        return ((feats - mean) / std).astype(np.float32)
    state = {} if state is None else state
    n0 = state.get("n", 0)
    s0 = state.get("sum", np.zeros(feats.shape[1], np.float64))
    run = s0 + np.cumsum(feats, axis=0, dtype=np.float64)  # sums through each frame
    n = n0 + np.arange(1, feats.shape[0] + 1, dtype=np.float64)[:, None]
    m = (k * mean.astype(np.float64) + run) / (k + n)
    state["sum"], state["n"] = run[-1], n0 + feats.shape[0]
    return ((feats - m) / std).astype(np.float32)
