"""Synthetic speech corpus on disk: shards of log-mel features + transcripts.

`python -m ctcli.synth.speechdata --text sentences.txt --out data/speech --shards 40 --shard-size 1000 --seed 1`

Each shard `shard-NNNNN.npz` holds `feats` (float16, all utterances
concatenated along time), `offsets` (int64, n+1), `texts` (normalised
transcripts) and `voices`. A shard is written atomically and skipped when
present, so an interrupted run resumes where it stopped; every utterance is
determined by (seed, global index), so a lost shard regenerates identically.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ctcli.audio import DEFAULT_FEATURES, logmel
from ctcli.synth.speech import (
    HELD_OUT_VOICES,
    ChannelConfig,
    Voice,
    available_voices,
    render_pair,
    training_voices,
)
from ctcli.textnorm import normalize_en

MIN_WORDS, MAX_WORDS = 2, 24  # utterance length bounds (words)

COMMANDS = [
    "turn on the lights",
    "turn off the kitchen lights",
    "set a timer for {n} minutes",
    "call {name}",
    "play the next song",
    "what is the weather tomorrow",
    "open the front door",
    "stop the music",
    "remind me to buy milk at {time}",
    "send a message to {name}",
    "volume up",
    "volume down",
    "go back",
    "cancel that",
    "yes please",
    "no thank you",
    "read my new messages",
    "what time is it",
    "add eggs to the shopping list",
    "schedule a meeting on {date}",
    "how far is it to {city}",
]
NAMES = [
    "john",
    "mary",
    "peter",
    "susan",
    "david",
    "linda",
    "james",
    "karen",
    "robert",
    "emma",
    "oliver",
    "sophia",
]
CITIES = [
    "london",
    "paris",
    "boston",
    "chicago",
    "denver",
    "seattle",
    "dublin",
    "madrid",
    "berlin",
    "toronto",
]
MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]


def template_sentence(rng: random.Random) -> str:
    """Numbers, dates, times and short commands, written with digits; the
    normaliser spells them out."""
    kind = rng.random()
    if kind < 0.4:
        s = rng.choice(COMMANDS)
    elif kind < 0.6:
        s = rng.choice(
            [
                "the total was ${n}.{c:02d}",
                "it costs {n} dollars",
                "about {p}% of {big} people",
                "page {n} line {m}",
                "room {n} on the {ord} floor",
                "flight {n} leaves at {time}",
            ]
        )
    elif kind < 0.8:
        s = rng.choice(
            [
                "born on {date}",
                "the {ord} of {month} {year}",
                "in {year} there were {big} of them",
                "the meeting is at {time} on {date}",
            ]
        )
    else:
        s = rng.choice(
            [
                "call {digits}",
                "my number is {digits}",
                "the code is {digits}",
                "{n} plus {m} is {sum}",
            ]
        )
    n, m = rng.randint(1, 99), rng.randint(1, 60)
    return s.format(
        n=n,
        m=m,
        c=rng.randint(0, 99),
        p=rng.randint(1, 99),
        big=f"{rng.randint(1, 999):,}" if rng.random() < 0.5 else rng.randint(1000, 99999),
        ord=rng.choice(["1st", "2nd", "3rd", "4th", "5th", "12th", "21st", "30th"]),
        month=rng.choice(MONTHS),
        year=rng.randint(1900, 2030),
        name=rng.choice(NAMES),
        city=rng.choice(CITIES),
        time=f"{rng.randint(1, 12)}:{rng.choice(['00', '15', '30', '45', '05'])}",
        date=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
        digits=" ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(3, 7))),
        sum=n + m,
    )


EXCLUDE_FILE = (
    Path(__file__).resolve().parents[2] / "lm" / "exclude-en.txt"
)  # evaluation transcripts


def load_sentences(path: Path, exclude: Path | None = EXCLUDE_FILE) -> list[str]:
    """Normalised sentences of a usable length from a one-per-line file,
    without any sentence equal to or containing an evaluation transcript
    (the same rule, and the same list, as the LM corpus)."""
    from ctcli.lmbuild import _Excluder, read_exclude

    drop = _Excluder(
        read_exclude(exclude, "word", "en") if exclude and Path(exclude).is_file() else []
    )
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = normalize_en(line)
            if MIN_WORDS <= len(s.split()) <= MAX_WORDS and not drop(s.split()):
                out.append(s)
    return out


def write_shard(path: Path, feats: list[np.ndarray], texts: list[str], voices: list[str]) -> None:
    offsets = np.zeros(len(feats) + 1, np.int64)
    offsets[1:] = np.cumsum([f.shape[0] for f in feats])
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        feats=np.concatenate(feats).astype(np.float16),
        offsets=offsets,
        texts=np.array(texts),
        voices=np.array(voices),
    )
    os.replace(tmp, path)


def utterances(
    sentences: list[str],
    voices: list[Voice],
    seed: int,
    first: int,
    count: int,
    p_template: float = 0.15,
    clean: bool = False,
    codecs: bool = True,
) -> Iterator[tuple[int, np.ndarray, str, str, np.ndarray]]:
    """(index, 16 kHz waveform, transcript, voice id, dry waveform) for utterances
    first..first+count-1; each depends only on (seed, index) and the voice list.
    The dry waveform is the same utterance before the channel (noise, reverb,
    band limits, codecs, gain): the same text, voice, speed and pitch, as the
    voice itself sounds. `clean` yields it as the waveform too. `codecs=False`
    skips the MP3/Opus round trips (ChannelConfig.codecs)."""
    engines = sorted({v.engine for v in voices})
    channel = None if clean else ChannelConfig(codecs=codecs)
    babble: list[np.ndarray] = []
    for idx in range(first, first + count):
        rng = random.Random(seed * 1_000_003 + idx)
        text = (
            normalize_en(template_sentence(rng))
            if rng.random() < p_template
            else rng.choice(sentences)
        )
        engine = rng.choice(engines)  # engines weighted equally, whatever their voice count
        voice = rng.choice([v for v in voices if v.engine == engine])
        try:
            dry, wave = render_pair(text, voice, seed, idx, channel, babble[-20:])
        except Exception as e:  # a TTS engine failing on one text must not stop the corpus
            print(f"skip {idx} ({voice.id}): {type(e).__name__}: {e}", file=sys.stderr)
            continue
        if wave.size < 0.3 * 16000:
            continue
        babble.append(wave)
        yield idx, wave, text, voice.id, dry


def select_voices(voices: list[Voice], spec: str) -> list[Voice]:
    """The voices named by `spec`: comma-separated engines (every voice of it)
    or engine:voice ids. A name that matches no installed voice is an error."""
    want = [w.strip() for w in spec.split(",") if w.strip()]
    missing = [w for w in want if not any(w in (v.engine, v.id) for v in voices)]
    if missing or not want:
        have = ", ".join(v.id for v in voices) or "none"
        raise SystemExit(
            f"--voices: no installed voice {', '.join(missing) or spec!r} (have: {have})"
        )
    return [v for v in voices if v.engine in want or v.id in want]


def _setup(text_file: Path, voices: list[Voice] | None) -> tuple[list[str], list[Voice]]:
    sentences = load_sentences(text_file)
    if not sentences:
        raise SystemExit(f"no usable sentences in {text_file}")
    voices = training_voices() if voices is None else voices
    if not voices:
        raise SystemExit("no TTS voice installed (espeak-ng, flite, festival, piper, hibari)")
    print(f"{len(sentences)} sentences, voices: {', '.join(v.id for v in voices)}", file=sys.stderr)
    return sentences, voices


def generate(
    text_file: Path,
    out: Path,
    shards: int,
    shard_size: int,
    seed: int,
    p_template: float = 0.15,
    features: dict | None = None,
    voices: list[Voice] | None = None,
    first: int = 0,
    jobs: int = 1,
    codecs: bool = True,
    dry_out: Path | None = None,
) -> None:
    """Write shards first..shards-1 (skipping those present). Each shard depends
    only on the seed and its number, so several processes given disjoint
    ranges build the same corpus as one. `jobs` > 1 forks that many workers
    after the sentences are loaded; worker j writes every jobs-th shard from
    first + j. `dry_out`: also write each shard's utterances before the channel
    there, under the same name (the trainer's --dry-data; a shard counts as
    present when both are)."""
    sentences, voices = _setup(text_file, voices)
    feats_cfg = {**DEFAULT_FEATURES, **(features or {})}
    out.mkdir(parents=True, exist_ok=True)
    if dry_out is not None:
        dry_out.mkdir(parents=True, exist_ok=True)
    todo = list(range(first, shards))
    job = (sentences, voices, out, shard_size, seed, p_template, feats_cfg, codecs, dry_out)
    if jobs <= 1:
        _write_shards(todo, *job)
        return
    import multiprocessing as mp

    ctx = mp.get_context("fork")  # the workers share the loaded sentences
    procs = [
        ctx.Process(target=_write_shards, args=(todo[j::jobs], *job))
        for j in range(min(jobs, len(todo)))
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise SystemExit(f"{len(failed)} of {len(procs)} shard workers failed")


def _write_shards(
    todo: list[int],
    sentences: list[str],
    voices: list[Voice],
    out: Path,
    shard_size: int,
    seed: int,
    p_template: float,
    feats_cfg: dict,
    codecs: bool,
    dry_out: Path | None = None,
) -> None:
    for k in todo:
        path = out / f"shard-{k:05d}.npz"
        dry_path = None if dry_out is None else dry_out / path.name
        if path.exists() and (dry_path is None or dry_path.exists()):
            continue
        t0 = time.time()
        feats, dry_feats, texts, vids = [], [], [], []
        for _, wave, text, vid, dry in utterances(
            sentences, voices, seed, k * shard_size, shard_size, p_template, codecs=codecs
        ):
            feats.append(logmel(wave, feats_cfg))
            if dry_path is not None:
                dry_feats.append(logmel(dry, feats_cfg))
            texts.append(text)
            vids.append(vid)
        # the twin first: a trainer loads a shard, and its twin, when the channel one appears
        if dry_path is not None:
            write_shard(dry_path, dry_feats, texts, vids)
        write_shard(path, feats, texts, vids)
        hours = sum(f.shape[0] for f in feats) * feats_cfg["hop"] / feats_cfg["sample_rate"] / 3600
        print(
            f"{path.name}: {len(feats)} utts, {hours:.2f} h, {time.time() - t0:.0f} s",
            file=sys.stderr,
            flush=True,
        )


def generate_wavs(
    text_file: Path,
    out: Path,
    n: int,
    seed: int,
    voices: list[Voice] | None = None,
    clean: bool = False,
) -> None:
    """An evaluation set as audio: out/wav/utt-NNNNN.wav (16 kHz, 16-bit) and
    out/manifest.tsv (`wav/utt-NNNNN.wav<TAB>transcript<TAB>voice`), for
    `ctcli eval --manifest`. Written to a temporary folder, then renamed."""
    import shutil

    import soundfile as sf

    sentences, voices = _setup(text_file, voices)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "wav").mkdir(parents=True)
    rows = []
    for idx, wave, text, vid, _ in utterances(sentences, voices, seed, 0, n, clean=clean):
        rel = f"wav/utt-{idx:05d}.wav"
        sf.write(str(tmp / rel), np.clip(wave, -1, 1), 16000, subtype="PCM_16")
        rows.append(f"{rel}\t{text}\t{vid}\n")
    (tmp / "manifest.tsv").write_text("".join(rows), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(f"{out}: {len(rows)} utterances", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", type=Path, required=True, help="training sentences, one per line")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--shards", type=int, default=40)
    ap.add_argument("--shard-size", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--first", type=int, default=0, help="first shard number (split a corpus across processes)"
    )
    ap.add_argument(
        "--voices",
        help="only these training voices: comma-separated engines or engine:voice ids "
        "(e.g. espeak-ng,flite:awb); default every installed one",
    )
    ap.add_argument(
        "--no-codecs",
        action="store_true",
        help="no MP3/Opus round trips (as where ffmpeg is missing; the other effects unchanged)",
    )
    ap.add_argument(
        "--dry-out",
        type=Path,
        metavar="DIR",
        help="also write every shard's utterances before the channel (no noise, reverb, band "
        "limits, codecs, gain) to DIR, same names (for train_asr --dry-data)",
    )
    ap.add_argument(
        "--jobs", type=int, default=1, help="worker processes (one per core; default 1)"
    )
    ap.add_argument(
        "--held-out-voices",
        action="store_true",
        help="speak with the held-out voices only (evaluation sets)",
    )
    ap.add_argument(
        "--wav",
        type=int,
        metavar="N",
        help="write N utterances as WAV files + manifest.tsv (an evaluation set) instead of shards",
    )
    ap.add_argument(
        "--clean",
        action="store_true",
        help="with --wav: no channel effects (noise, reverb, band limits, codecs, gain)",
    )
    a = ap.parse_args(argv)
    voices = (
        [v for v in available_voices() if v.id in HELD_OUT_VOICES] if a.held_out_voices else None
    )
    if a.voices:
        voices = select_voices(training_voices() if voices is None else voices, a.voices)
    if a.wav:
        generate_wavs(a.text, a.out, a.wav, a.seed, voices=voices, clean=a.clean)
    else:
        generate(
            a.text, a.out, a.shards, a.shard_size, a.seed, voices=voices, first=a.first,
            jobs=a.jobs, codecs=not a.no_codecs, dry_out=a.dry_out,
        )  # fmt: skip


if __name__ == "__main__":
    main()
