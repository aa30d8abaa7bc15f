"""Speech side by side on real human recordings: ctcli's bundled acoustic
model (with the en-4gram LM) vs pocketsphinx and whisper tiny.en, one CPU
thread each, per source (WER, CER, real-time factor).

Builds the evaluation set (bench/speech_eval.py) and the peers' virtualenv
(bench/setup_speech_peers.sh) when missing; peer results are cached per
utterance. Without a bundled audio model, only the peers are reported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "bench" / ".cache" / "speech-eval"
PEERS_PY = ROOT / "bench" / ".venv-speech" / "bin" / "python"


def _peers_module():
    spec = importlib.util.spec_from_file_location(
        "speech_peers", ROOT / "bench" / "speech_peers.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_ctcli(model: str, rows: list[dict], out: Path, peers) -> tuple[list[dict], int]:
    """Decode every utterance in one process (model and LM loaded once) with
    the model's own decoding settings; returns the records and the beam width."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from ctcli.audio import decode_audio
    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import Pipeline
    from ctcli.stream import span_logmel

    t0 = time.perf_counter()
    runner = Pipeline(TranscribeOptions(model=model, jobs=1)).runner_for("audio")
    load_s = time.perf_counter() - t0
    feats = runner.model.meta.get("features", {})
    res = []
    for r in rows:
        data = (EVAL / r["path"]).read_bytes()
        t, c = time.perf_counter(), time.process_time()
        wave = decode_audio(data)
        _, x = span_logmel(wave, feats)  # as `ctcli transcribe` reads a short file
        lp = runner.model.log_probs([x])[0]
        hyp = runner.decoder.decode(lp).text
        secs, cpu = time.perf_counter() - t, time.process_time() - c
        res.append(peers.make_record(r, hyp, secs, cpu, load_s))  # the peers' record format
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(d) + "\n" for d in res))
    return res, runner.decoder.cfg.beam_width


def main() -> int:
    if not (EVAL / "manifest.tsv").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "speech_eval.py")], check=True)
    if not PEERS_PY.exists():
        subprocess.run(["bash", str(ROOT / "bench" / "setup_speech_peers.sh")], check=True)
    subprocess.run([str(PEERS_PY), str(ROOT / "bench" / "speech_peers.py")], check=False)
    from ctcli import registry

    entry = registry.default_model("audio")
    if entry is None:
        print("ctcli: no bundled audio model yet (asr-en not trained); peers only")
        return 0
    peers = _peers_module()
    rows = peers.read_manifest(EVAL / "manifest.tsv")
    res, beam = run_ctcli(
        entry.name,
        rows,
        ROOT / "bench" / ".cache" / "speech-peers" / f"ctcli-{entry.name}.jsonl",
        peers,
    )
    table = peers.summarise(res)
    print(f"ctcli {entry.name} + en-4gram, beam {beam}, one thread:")
    for src, t in table.items():
        print(
            f"  {src:<22} utts {t['utts']:4d}  WER {100 * t['wer']:5.1f}  CER {100 * t['cer']:5.1f}  "
            f"RTF {t['rtf']:.3f} (CPU {t['cpu_rtf']:.3f})"
        )
    mine = table["ALL"]
    for name in ("pocketsphinx", "whisper-tiny.en"):
        f = ROOT / "bench" / ".cache" / "speech-peers" / f"{name}.jsonl"
        if not f.exists():
            print(f"  vs {name}: no results (bench/speech_peers.py did not run)")
            continue
        theirs = peers.summarise([json.loads(ln) for ln in f.read_text().splitlines() if ln])
        t = theirs["ALL"]
        print(
            f"  vs {name:<16} WER {100 * mine['wer']:.1f} vs {100 * t['wer']:.1f} "
            f"({mine['wer'] / max(t['wer'], 1e-9):.2f}x), CER {100 * mine['cer']:.1f} vs "
            f"{100 * t['cer']:.1f}, RTF {mine['rtf']:.3f} vs {t['rtf']:.3f} "
            f"({t['rtf'] / max(mine['rtf'], 1e-9):.1f}x faster)"
        )
    heldout_voice(entry.name, beam)
    return 0


def heldout_voice(model: str, beam: int) -> None:
    """WER on a synthetic voice never used in training (flite rms by default),
    held-out text rendered by ctcli.synth.speechdata --wav: 300 utterances,
    the first 100 for tuning (dev.tsv), the other 200 reported (test.tsv).
    Two renderings of the same utterances: through the training channel
    (noise, reverb, band limits, codecs) and clean (the voice as it sounds)."""
    from ctcli.evaluate_speech import evaluate_speech

    for name, extra in (("speech-heldout", []), ("speech-heldout-clean", ["--clean"])):
        d = ROOT / "bench" / ".cache" / name
        if not (d / "manifest.tsv").exists():
            subprocess.run(
                [sys.executable, "-m", "ctcli.synth.speechdata", "--text",
                 str(ROOT / "build" / "lm" / "corpus" / "test.txt"), "--out", str(d),
                 "--wav", "300", "--seed", "3", "--held-out-voices", *extra],
                check=False,
            )  # fmt: skip
        if not (d / "manifest.tsv").exists():
            print("held-out voice: set could not be made (make lm-corpus; flite)")
            return
        # the first 100 utterances are the dev slice the LM weights were tuned on
        rows = (d / "manifest.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (d / "dev.tsv").write_text("".join(rows[:100]), encoding="utf-8")
        (d / "test.tsv").write_text("".join(rows[100:]), encoding="utf-8")
        label = "clean" if extra else "through the channel"
        for lm in ("none", "en-4gram"):
            rep = evaluate_speech(model, d / "test.tsv", lm=lm, threads=1)
            b = rep["modes"]["beam"]["ALL"]
            print(
                f"held-out synthetic voice, {label}, test slice ({rep['utterances']} utts), "
                f"beam {beam}, LM {lm}: WER {100 * b['wer']:.1f}  CER {100 * b['cer']:.1f}"
            )


if __name__ == "__main__":
    sys.exit(main())
