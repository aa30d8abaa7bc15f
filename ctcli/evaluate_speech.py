"""`ctcli eval` for speech: WER, CER and real-time factor on a manifest of
`path<TAB>transcript[<TAB>source]` lines (paths relative to the manifest).

Normalisation (references and hypotheses alike): `ctcli.textnorm.normalize_en`
(lower case, numbers, money, times and ordinals spelled out, punctuation
removed). WER/CER are summed edits over summed reference words/characters,
overall and per source. RTF = seconds of processing (decoding the file,
features, model, search) / seconds of audio, on the configured threads.
"""

from __future__ import annotations

import time
from pathlib import Path

from ctcli.errors import CtcliError, UsageError


def read_manifest(path: Path) -> list[tuple[Path, str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read manifest {path}: {e}") from None
    out = []
    for ln, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) < 2:
            raise UsageError(f"{path}:{ln}: expected 'path<TAB>transcript[<TAB>source]'")
        p = Path(cols[0]) if Path(cols[0]).is_absolute() else path.parent / cols[0]
        out.append((p, cols[1], cols[2] if len(cols) > 2 else "all"))
    return out


def evaluate_speech(
    model: str | None,
    manifest: Path,
    *,
    greedy_only: bool = False,
    beam: int | None = None,
    lm: str | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    blank_penalty: float | None = None,
    threads: int = 1,
    limit: int | None = None,
) -> dict:
    import torch

    from ctcli.audio import decode_audio
    from ctcli.decoder import greedy_decode
    from ctcli.metrics import edit_distance
    from ctcli.options import TranscribeOptions
    from ctcli.pipeline import Pipeline
    from ctcli.stream import span_logmel
    from ctcli.textnorm import normalize_en

    torch.set_num_threads(max(1, threads))
    rows = read_manifest(manifest)[:limit]
    t0 = time.perf_counter()
    runner = Pipeline(
        TranscribeOptions(
            model=model,
            lm=lm,
            alpha=alpha,
            beta=beta,
            blank_penalty=blank_penalty,
            beam=beam,
            greedy=greedy_only,
            jobs=threads,
        )
    ).runner_for("audio")
    load_s = time.perf_counter() - t0
    feats = runner.model.meta.get("features", {})
    modes = ["greedy"] if greedy_only else ["greedy", "beam"]
    acc: dict = {}
    failed = 0
    for path, ref, source in rows:
        try:
            wave = decode_audio(path.read_bytes())
        except (CtcliError, OSError):
            failed += 1
            continue
        t = time.perf_counter()
        _, x = span_logmel(wave, feats)  # read as `ctcli transcribe` reads the file
        lp = runner.model.log_probs([x])[0]
        base = time.perf_counter() - t
        ref_n = normalize_en(ref)
        for m in modes:
            t = time.perf_counter()
            text = (
                greedy_decode(lp, runner.model.labels, runner.model.blank).text
                if m == "greedy"
                else runner.decoder.decode(lp).text
            )
            secs = base + time.perf_counter() - t
            hyp = normalize_en(text)
            for key in (source, "ALL"):
                a = acc.setdefault(m, {}).setdefault(
                    key,
                    {
                        "utts": 0,
                        "words": 0,
                        "word_err": 0,
                        "chars": 0,
                        "char_err": 0,
                        "audio_s": 0.0,
                        "secs": 0.0,
                    },
                )
                a["utts"] += 1
                a["words"] += len(ref_n.split())
                a["word_err"] += edit_distance(ref_n.split(), hyp.split())
                a["chars"] += len(ref_n)
                a["char_err"] += edit_distance(ref_n, hyp)
                a["audio_s"] += wave.size / 16000
                a["secs"] += secs
    report = {
        "model": model or runner.name,  # None: the bundled audio model
        "utterances": len(rows),
        "failed": failed,
        "load_s": round(load_s, 3),
        "modes": {},
    }
    for m, by in acc.items():
        report["modes"][m] = {
            k: {
                "utts": a["utts"],
                "wer": a["word_err"] / max(1, a["words"]),
                "cer": a["char_err"] / max(1, a["chars"]),
                "rtf": a["secs"] / max(a["audio_s"], 1e-9),
                "minutes": a["audio_s"] / 60,
            }
            for k, a in by.items()
        }
    return report


def format_speech_report(rep: dict) -> str:
    lines = [
        f"utterances {rep['utterances']} (unreadable {rep['failed']})  model load {rep['load_s']:.3f} s"
    ]
    for m, by in rep["modes"].items():
        for src, r in sorted(by.items(), key=lambda kv: (kv[0] == "ALL", kv[0])):
            lines.append(
                f"{m:6s} {src:<22} utts {r['utts']:5d}  {r['minutes']:6.2f} min  WER {100 * r['wer']:6.2f}%  "
                f"CER {100 * r['cer']:6.2f}%  RTF {r['rtf']:.4f}"
            )
    return "\n".join(lines)
