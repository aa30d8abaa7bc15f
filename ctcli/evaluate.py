"""`ctcli eval`: score a model on generated or labelled images.

Reports CER, sequence accuracy (greedy and beam), top character confusions,
and throughput (lines per second: preprocessing + forward + decoding, on the
configured number of torch threads). Image generation / file reading is
excluded from the timing; model load time is reported separately.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ctcli.errors import InputError, UsageError
from ctcli.results import tidy_text

EXPR_NBEST = 16  # hypotheses the arithmetic re-ranker looks at


@dataclass
class EvalReport:
    n: int = 0
    load_s: float = 0.0
    results: dict = field(
        default_factory=dict
    )  # mode -> {seq_acc, cer, lines_per_s, confusions, errors}
    failed: int = 0  # unreadable items (counted as wrong)

    def to_dict(self) -> dict:
        return {"n": self.n, "load_s": self.load_s, "failed": self.failed, **self.results}


def spec_items(spec: str, n: int, seed: int) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(name, gray uint8, text) from a generator."""
    from ctcli.image import rgb_to_gray
    from ctcli.synth import get_generator

    gen = get_generator(spec)(seed)
    for i in range(n):
        s = gen.sample(i)
        yield f"{spec}:{seed}:{i}", rgb_to_gray(s.image), s.text


def manifest_items(
    path: str | Path, limit: int | None = None
) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(path, gray uint8 or None if unreadable, text) from `path<TAB>text` lines (paths relative to the manifest)."""
    from ctcli.image import load_path

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"cannot read manifest {path}: {e.strerror}") from None
    k = 0
    for ln, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "\t" not in line:
            raise UsageError(f"{path}:{ln}: expected 'path<TAB>text'")
        p, text = line.split("\t", 1)
        f = Path(p) if Path(p).is_absolute() else path.parent / p
        try:
            gray = load_path(str(f))
        except InputError:
            gray = None
        yield str(f), gray, text
        k += 1
        if limit is not None and k >= limit:
            return


def _greedy(lp: np.ndarray, labels: list[str], blank: int) -> str:
    from ctcli.train import greedy_collapse

    return greedy_collapse(lp, labels, blank)


def make_beam(
    model,
    beam_width: int | None,
    lm: str | None,
    alpha: float | None,
    beta: float | None,
    blank_penalty: float | None = None,
):
    """A function log_probs -> (best text, [n-best texts]) using ctcli.decoder
    (beam_width None: the model's, else 32; its stored search pruning too)."""
    from ctcli.decoder import blank_penalty_for, build_decoder, search_for

    meta = model.meta
    rerank = meta.get("rerank")
    lm_path = None
    unit = "char"
    if lm and lm.lower() != "none":
        from ctcli import registry

        lm_path, entry = registry.resolve_lm(lm)
        if entry is not None:
            unit = entry.info.get("unit", unit)
    dec = build_decoder(
        list(model.labels),
        blank=model.blank,
        lm=str(lm_path) if lm_path else None,
        alpha=alpha if alpha is not None else (meta.get("alpha") if lm_path else None),
        beta=beta if beta is not None else (meta.get("beta") if lm_path else None),
        lm_unit=unit,
        n_best=EXPR_NBEST if rerank == "expr" else 1,
        lm_sentence=bool(meta.get("lm_sentence", True)),
        blank_penalty=blank_penalty_for(
            blank_penalty, meta.get("blank_penalty"), lm_path is not None
        ),
        **search_for(beam_width, meta),
    )

    def run(lp: np.ndarray) -> str:
        r = dec.decode(lp)
        if rerank == "expr":
            from ctcli.exprcheck import rescore

            return rescore(lp, [r.text] + [h.text for h in r.nbest], model.labels, model.blank)
        return r.text

    return run


def evaluate(
    model_path: str | Path,
    items: Iterator[tuple[str, np.ndarray | None, str]],
    *,
    modes: tuple[str, ...] = ("greedy", "beam"),
    beam_width: int | None = None,
    lm: str | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    blank_penalty: float | None = None,
    threads: int = 1,
    batch: int = 64,
    device: str = "cpu",
    progress=None,
    errors_out: list | None = None,
) -> EvalReport:
    """Score a model. Items are consumed in batches; only model work is timed."""
    import torch

    from ctcli.image import load_lines
    from ctcli.metrics import Scorer
    from ctcli.model import load_model

    torch.set_num_threads(max(1, threads))
    t0 = time.perf_counter()
    model = load_model(model_path, device=device)
    rep = EvalReport(load_s=time.perf_counter() - t0)
    line_opts = model.line_options
    decoders = {"greedy": lambda lp: _greedy(lp, model.labels, model.blank)}
    if "beam" in modes:
        decoders["beam"] = make_beam(model, beam_width, lm, alpha, beta, blank_penalty)
    scorers = {m: Scorer() for m in modes}
    timing = {m: 0.0 for m in modes}
    cpu = {m: 0.0 for m in modes}
    fwd_time = fwd_cpu = 0.0

    def flush(buf):
        nonlocal fwd_time, fwd_cpu
        t, c = time.perf_counter(), time.process_time()
        arrays, owners = [], []
        for k, (_, gray, _) in enumerate(buf):
            if gray is None:
                continue
            for line in load_lines(gray, **line_opts):
                arrays.append(line.array)
                owners.append(k)
        lps = model.log_probs(arrays)
        fwd_time += time.perf_counter() - t
        fwd_cpu += time.process_time() - c
        for m in modes:
            t, c = time.perf_counter(), time.process_time()
            hyps = [""] * len(buf)
            parts: dict[int, list[str]] = {}
            for k, lp in zip(owners, lps, strict=False):
                parts.setdefault(k, []).append(tidy_text(decoders[m](lp)))
            for k, p in parts.items():
                hyps[k] = "\n".join(p)
            timing[m] += time.perf_counter() - t
            cpu[m] += time.process_time() - c
            for (name, _gray, ref), hyp in zip(buf, hyps, strict=False):
                scorers[m].add(ref, hyp)
                if errors_out is not None and hyp != ref and m == modes[-1]:
                    errors_out.append((name, ref, hyp))
        rep.n += len(buf)
        rep.failed += sum(g is None for _, g, _ in buf)
        if progress:
            progress(rep.n)

    buf = []
    for item in items:
        buf.append(item)
        if len(buf) >= batch:
            flush(buf)
            buf = []
    if buf:
        flush(buf)
    for m in modes:
        s = scorers[m]
        secs = fwd_time + timing[m]
        cpu_secs = fwd_cpu + cpu[m]
        rep.results[m] = {
            "seq_acc": s.seq_acc,
            "cer": s.cer,
            "errors": s.n - s.exact,
            "lines_per_s": rep.n / secs if secs > 0 else float("inf"),
            "lines_per_cpu_s": rep.n / cpu_secs if cpu_secs > 0 else float("inf"),
            "confusions": s.top_confusions(10),
        }
    return rep


def format_report(rep: EvalReport) -> str:
    lines = [f"images {rep.n}  (unreadable {rep.failed})  model load {rep.load_s:.3f} s"]
    for m, r in rep.results.items():
        lines.append(
            f"{m:6s} seq-acc {100 * r['seq_acc']:.2f}%  CER {100 * r['cer']:.3f}%  errors {r['errors']}  "
            f"{r['lines_per_s']:.0f} lines/s wall, {r['lines_per_cpu_s']:.0f} per CPU-second"
        )
        if r["confusions"]:
            conf = ", ".join(f"{a or '∅'}→{b or '∅'} {c}" for a, b, c in r["confusions"])
            lines.append(f"       top confusions (ref→hyp): {conf}")
    return "\n".join(lines)
