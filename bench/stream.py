"""Streaming and long audio.

1. A 60-minute file (spoken sentences at known offsets, flite voices) through
   `ctcli transcribe -f jsonl`: peak RSS (/usr/bin/time -v) and how far each
   VAD segment start lies from the known start of its utterance.
2. With a bundled `asr-en` model: simulated real-time streaming of held-out
   utterances through `ctcli listen` logic: latency from the end of speech to
   the final line, from the end of each word to its first appearance in a
   partial, and streaming vs offline WER on the same files.

Without `asr-en` (not trained yet) part 1 runs with a random-init model of the
same architecture and size (memory and timestamps do not depend on weights)
and part 2 is reported as not available.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache" / "stream"
MINUTES = float(os.environ.get("BENCH_LONG_MINUTES", "60"))
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "she sells sea shells by the sea shore",
    "a journey of a thousand miles begins with a single step",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "actions speak louder than words",
    "better late than never",
    "every cloud has a silver lining",
    "fortune favours the bold",
    "knowledge is power",
]


def make_long_wav(path: Path, minutes: float) -> list[tuple[float, float]]:
    """Concatenate flite utterances with 0.8-1.5 s pauses; return (start, end) of each."""
    import random

    import soundfile as sf

    from ctcli.synth.speech import Voice, tts

    rng = random.Random(0)
    voices = [Voice("flite", v) for v in ("slt", "awb", "rms", "kal16")]
    clips = {}
    for i, s in enumerate(SENTENCES):
        for v in voices:
            clips[(i, v.name)] = tts(s, v, random.Random(i))
    offsets = []
    with sf.SoundFile(str(path), "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        t = 0.0
        while t < minutes * 60:
            gap = rng.uniform(0.8, 1.5)
            f.write(np.zeros(int(gap * 16000), np.float32))
            t += gap
            clip = clips[(rng.randrange(len(SENTENCES)), rng.choice(voices).name)]
            f.write(clip)
            offsets.append((t + onset(clip), t + clip.size / 16000))
            t += clip.size / 16000
    return offsets


def onset(clip: np.ndarray) -> float:
    """Seconds to the first 10 ms frame within 30 dB of the clip's loudest."""
    frames = clip[: clip.size // 160 * 160].reshape(-1, 160)
    e = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    return float(np.argmax(e > e.max() - 30) * 0.01)


def offset(clip: np.ndarray) -> float:
    """Seconds to the end of the last 10 ms frame within 30 dB of the clip's loudest."""
    frames = clip[: clip.size // 160 * 160].reshape(-1, 160)
    e = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    return float((len(e) - np.argmax(e[::-1] > e.max() - 30)) * 0.01)


def model_path() -> tuple[str, str]:
    from ctcli import registry

    e = registry.default_model("audio")
    if e is not None:
        return e.name, "bundled"
    p = CACHE / "random-asr.pt"
    if not p.exists():
        import torch

        from ctcli.audio import DEFAULT_FEATURES
        from ctcli.model import build_model, save_checkpoint
        from ctcli.train_asr import ALPHABET, AsrConfig

        c = AsrConfig()
        dims = dict(
            n_classes=len(ALPHABET),
            n_mels=80,
            conv_channels=c.conv_channels,
            rnn_hidden=c.rnn_hidden,
            rnn_layers=c.rnn_layers,
            time_stride=c.time_stride,
        )
        torch.manual_seed(0)
        m = build_model("asr_conv_gru", **dims)
        with torch.no_grad():
            m.head.bias[0] -= 3.0  # emit text for every segment
        save_checkpoint(
            p,
            m,
            arch="asr_conv_gru",
            dims=dims,
            kind="audio",
            alphabet=ALPHABET,
            blank=0,
            features=dict(DEFAULT_FEATURES),
            frame_stride=0.01 * c.time_stride,
        )
    return str(p), "random-init (no asr-en yet)"


def latency_and_wer(model: str, n_files: int = 12, wer_files: int = 150) -> None:
    """Simulated real-time streaming of spoken sentences: latency of partials
    and finals, and streaming vs offline WER on the same files."""
    import random

    from ctcli import stream
    from ctcli.metrics import edit_distance
    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import Pipeline
    from ctcli.synth.speech import Voice, tts

    runner = Pipeline(TranscribeOptions(model=model)).runner_for("audio")
    stream.warm_up(runner.model, runner.decoder)
    word_lat, final_lat, stamp_lag, errs = [], [], [], {"stream": 0, "offline": 0}
    n_words = 0
    for i in range(n_files):
        ref = SENTENCES[i % len(SENTENCES)]
        clip = tts(ref, Voice("flite", ["slt", "rms", "awb", "kal16"][i % 4]), random.Random(i))
        wave = np.concatenate([np.zeros(8000, np.float32), clip, np.zeros(16000, np.float32)])
        events: list = []
        rec = stream.StreamRecognizer(
            runner.model, runner.decoder, stream.VadConfig(), events.append
        )
        t0 = time.monotonic()
        blocks = (wave[k : k + 1600] for k in range(0, wave.size, 1600))
        stream.run(stream.realtime(blocks), rec)
        finals = [e for e in events if e.final]
        hyp = " ".join(e.text for e in finals)
        speech_end = 0.5 + offset(clip)  # true end of speech in stream time (0.5 s lead-in)
        if finals:
            final_lat.append(finals[-1].wall - (t0 + speech_end))
            if finals[-1].words:
                stamp_lag.append(finals[-1].words[-1].end - speech_end)
        for f in finals:
            words = f.words
            partials = [e for e in events if not e.final and e.utterance == f.utterance]
            # word ends are the model's own CTC timestamps (no forced alignment here)
            for k, w in enumerate(words):
                seen = next(
                    (
                        p
                        for p in partials
                        if len(p.text.split()) > k and p.text.split()[k] == w.text
                    ),
                    f,
                )
                word_lat.append(seen.wall - (t0 + w.end))
    print(f"streaming ({n_files} sentences, simulated real time, flite voices):")
    print(
        f"  word end -> first partial with the word: median {1000 * np.median(word_lat):.0f} ms (target <= 500)"
    )
    print(
        f"  end of speech -> final line: median {1000 * np.median(final_lat):.0f} ms (target <= 400)"
    )
    if stamp_lag:
        print(
            f"  (the model's last word-end timestamp minus the true end of speech: median "
            f"{1000 * np.median(stamp_lag):.0f} ms; word latencies above are measured from those stamps)"
        )
    # WER: the same files through the streaming path (not paced: the text does
    # not depend on timing) and decoded whole, offline
    heldout = ROOT / "bench" / ".cache" / "speech-heldout" / "manifest.tsv"
    if not heldout.exists():
        print("  streaming vs offline WER: no bench/.cache/speech-heldout (run bench/speech.py)")
        return
    import soundfile as sf

    from ctcli.textnorm import normalize_en

    rows = [ln.split("\t") for ln in heldout.read_text(encoding="utf-8").splitlines()][:wer_files]
    for rel, ref, _ in rows:
        wave, _sr = sf.read(str(heldout.parent / rel), dtype="float32")
        events = []
        rec = stream.StreamRecognizer(
            runner.model, runner.decoder, stream.VadConfig(), events.append
        )
        stream.run((wave[k : k + 1600] for k in range(0, wave.size, 1600)), rec)
        hyp = normalize_en(" ".join(e.text for e in events if e.final))
        _, x = stream.span_logmel(wave, runner.model.meta.get("features"))  # = `transcribe`
        lp = runner.model.log_probs([x])[0]
        off = normalize_en(runner.decoder.decode(lp).text)
        ref = normalize_en(ref)
        n_words += len(ref.split())
        errs["stream"] += edit_distance(ref.split(), hyp.split())
        errs["offline"] += edit_distance(ref.split(), off.split())
    print(
        f"  WER on {len(rows)} held-out-voice files ({n_words} words): streaming "
        f"{100 * errs['stream'] / n_words:.1f}% vs offline {100 * errs['offline'] / n_words:.1f}% "
        "(target: within 1 point)"
    )


def main() -> None:
    if not shutil.which("flite"):
        print("flite is not installed (make system); skipping")
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    wav = CACHE / f"long-{int(MINUTES)}min.wav"
    meta = wav.with_suffix(".json")
    if not meta.exists():
        offsets = make_long_wav(wav, MINUTES)
        meta.write_text(json.dumps(offsets))
    offsets = json.loads(meta.read_text())
    model, how = model_path()
    ctcli = ROOT / ".venv" / "bin" / "ctcli"
    t0 = time.time()
    p = subprocess.run(
        [
            "/usr/bin/time",
            "-v",
            str(ctcli),
            "transcribe",
            "-f",
            "jsonl",
            "--lm",
            "none",
            "--beam",
            "8",
            "--model",
            model,
            str(wav),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.time() - t0
    rss_kb = next(
        (
            int(line.split()[-1])
            for line in p.stderr.splitlines()
            if "Maximum resident set size" in line
        ),
        -1,
    )
    if p.returncode != 0:
        print(p.stderr[-2000:])
        raise SystemExit(1)
    rec = json.loads(p.stdout)
    segs = [(s["start"], s["end"]) for s in rec.get("segments", [])]
    # each utterance: the segment overlapping its speech; lead = speech onset - segment start
    errs, missed = [], 0
    for a, b in offsets:
        hit = [s for s in segs if s[0] <= b and s[1] >= a]
        if hit:
            errs.append(a - hit[0][0])
        else:
            missed += 1
    errs_a = np.array(errs)
    print(f"long audio: {MINUTES:.0f} min, {len(offsets)} utterances, model {how}")
    print(
        f"  wall {wall:.1f} s (RTF {wall / (MINUTES * 60):.3f}), peak RSS {rss_kb / 1024:.0f} MiB (target < 1536 MiB)"
    )
    print(
        f"  segments {len(segs)}; utterances found {len(errs)}/{len(offsets)}; "
        f"segment start precedes speech onset by median {np.median(errs_a):.3f} s, "
        f"min {errs_a.min():.3f} s, max {errs_a.max():.3f} s (VAD pre-roll 0.25 s; negative = speech cut)"
    )
    if how != "bundled":
        print(
            "  streaming latency / streaming-vs-offline WER: n/a until the asr-en model is trained"
        )
    else:
        latency_and_wer(model)


if __name__ == "__main__":
    main()
