"""Error rates for any token sequences: CER, WER, sequence accuracy, confusions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance (unit costs) between two sequences (strings or token lists)."""
    if len(ref) < len(hyp):
        ref, hyp = hyp, ref
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def cer(ref: str, hyp: str) -> float:
    """Character error rate: edits / len(ref); an empty ref gives 0.0 or 1.0 (any hyp)."""
    if not ref:
        return 0.0 if not hyp else 1.0
    return edit_distance(ref, hyp) / len(ref)


def wer(ref: str, hyp: str) -> float:
    """Word error rate over whitespace-separated words."""
    r, h = ref.split(), hyp.split()
    if not r:
        return 0.0 if not h else 1.0
    return edit_distance(r, h) / len(r)


def align(ref: Sequence, hyp: Sequence) -> list[tuple[object | None, object | None]]:
    """Minimum-edit alignment as (ref_token|None, hyp_token|None) pairs."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(
                d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])
            )
    out = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            out.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            out.append((ref[i - 1], None))
            i -= 1
        else:
            out.append((None, hyp[j - 1]))
            j -= 1
    return out[::-1]


class Scorer:
    """Accumulates corpus-level CER / WER / sequence accuracy and confusions."""

    def __init__(self):
        self.n = self.exact = 0
        self.char_err = self.chars = 0
        self.word_err = self.words = 0
        self.confusions: Counter = (
            Counter()
        )  # (ref_char|'', hyp_char|'') -> count; '' = insertion/deletion

    def add(self, ref: str, hyp: str) -> None:
        self.n += 1
        self.exact += ref == hyp
        self.char_err += edit_distance(ref, hyp)
        self.chars += len(ref)
        self.word_err += edit_distance(ref.split(), hyp.split())
        self.words += len(ref.split())
        if ref != hyp:
            for r, h in align(ref, hyp):
                if r != h:
                    self.confusions[(r or "", h or "")] += 1

    @property
    def cer(self) -> float:
        return self.char_err / max(1, self.chars)

    @property
    def wer(self) -> float:
        return self.word_err / max(1, self.words)

    @property
    def seq_acc(self) -> float:
        return self.exact / max(1, self.n)

    def top_confusions(self, k: int = 10) -> list[tuple[str, str, int]]:
        return [(r, h, c) for (r, h), c in self.confusions.most_common(k)]
