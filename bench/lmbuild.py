"""Benchmark: `ctcli lm build` against KenLM's `lmplz` on the same text.

Usage: python bench/lmbuild.py [--words 1000000] [--order 4] [--lmplz-mem 1G]

Takes about 1 M words of the English LM corpus (every third training
sentence of build/lm/corpus/train.txt; `lm/recipe.sh corpus` writes it),
normalised once so both tools see the same tokens, builds an unpruned model
with each tool in its own process, and prints build time, peak memory (max
RSS of the child process) and the perplexity of both models on the held-out
sentences, measured through the `kenlm` Python module. lmplz comes from
lm/build_kenlm_tools.sh; its memory is bounded by `-S` (default here 1G).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ctcli.cli_lm import find_kenlm_tool, perplexity  # noqa: E402
from ctcli.lmbuild import tokenize  # noqa: E402


def run_measured(cmd: list[str], **kw) -> tuple[float, float]:
    """Run cmd; return (wall seconds, peak RSS in MiB) of that child alone."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return wall, ru.ru_maxrss / 1024


def arpa_counts(path: Path) -> list[int]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("ngram "):
                out.append(int(line.split("=")[1]))
            elif line.startswith("\\1-grams"):
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=ROOT / "build/lm/corpus")
    ap.add_argument("--work", type=Path, default=ROOT / "build/lm/bench")
    ap.add_argument("--words", type=int, default=1_000_000)
    ap.add_argument("--order", type=int, default=4)
    ap.add_argument("--lmplz-mem", default="1G", help="lmplz -S (its memory budget)")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    a = ap.parse_args()

    train_src, test_src = a.corpus / "train.txt", a.corpus / "test.txt"
    if not train_src.exists():
        subprocess.run([str(ROOT / "lm/recipe.sh"), "corpus"], check=True)
    lmplz = find_kenlm_tool("lmplz")
    if lmplz is None:
        subprocess.run([str(ROOT / "lm/build_kenlm_tools.sh")], check=True)
        lmplz = find_kenlm_tool("lmplz")
    a.work.mkdir(parents=True, exist_ok=True)
    train, test = a.work / "train.txt", a.work / "test.txt"
    n_words = 0
    with open(train_src, encoding="utf-8") as src, open(train, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i % 3:
                continue
            toks = tokenize(line, "word", "en")
            if toks:
                dst.write(" ".join(toks) + "\n")
                n_words += len(toks)
                if n_words >= a.words:
                    break
    with open(test_src, encoding="utf-8") as src, open(test, "w", encoding="utf-8") as dst:
        for line in src:
            if toks := tokenize(line, "word", "en"):
                dst.write(" ".join(toks) + "\n")

    ours, ref = a.work / "ours.arpa", a.work / "lmplz.arpa"
    t_ours, m_ours = run_measured(
        [sys.executable, "-m", "ctcli.cli_lm", "build", str(train), "-o", str(ours),
         "--order", str(a.order), "--normalize", "none"],
        cwd=ROOT, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with open(train, "rb") as fin, open(ref, "wb") as fout:
        t_ref, m_ref = run_measured(
            [lmplz, "-o", str(a.order), "-S", a.lmplz_mem, "-T", str(a.work)],
            stdin=fin,
            stdout=fout,
            stderr=subprocess.DEVNULL,
        )
    with open(test, encoding="utf-8") as fh:
        test_lines = fh.readlines()
    p_ours = perplexity(ours, test_lines, "word", "none")
    p_ref = perplexity(ref, test_lines, "word", "none")
    rel = (p_ours["perplexity"] - p_ref["perplexity"]) / p_ref["perplexity"] * 100
    res = {
        "train_words": n_words,
        "test_tokens": p_ours["tokens"],
        "order": a.order,
        "ctcli": {"seconds": round(t_ours, 2), "peak_rss_mib": round(m_ours), "perplexity": round(p_ours["perplexity"], 3),
                  "ngrams": arpa_counts(ours)},
        "lmplz": {"seconds": round(t_ref, 2), "peak_rss_mib": round(m_ref), "perplexity": round(p_ref["perplexity"], 3),
                  "ngrams": arpa_counts(ref), "S": a.lmplz_mem},
        "perplexity_diff_percent": round(rel, 4),
    }  # fmt: skip
    print(
        f"LM build, order {a.order}, {n_words} training words, {p_ours['tokens']} test tokens (with </s>)"
    )
    print(f"{'tool':<16}{'build s':>9}{'peak RSS MiB':>14}{'test ppl':>11}  n-grams")
    for name, key in (("ctcli lm build", "ctcli"), (f"lmplz -S {a.lmplz_mem}", "lmplz")):
        r = res[key]
        print(
            f"{name:<16}{r['seconds']:>9.2f}{r['peak_rss_mib']:>14}{r['perplexity']:>11.3f}  {r['ngrams']}"
        )
    print(f"perplexity difference: {rel:+.4f} % (acceptance: within 3 %)")
    if a.json:
        print(json.dumps(res))
    if abs(rel) > 3:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
