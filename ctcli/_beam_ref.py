"""Readable pure-Python reference of the CTC algorithms (for tests, not speed).

* :func:`ctc_forward` / :func:`ctc_backward`: the CTC forward-backward
  recursions in numpy, log space.
* :func:`prefix_beam_search`: the prefix beam search of ``ctcli._beam`` with
  the same scoring (word LM with unigram look-ahead and OOV cost, or a char
  LM), without the per-frame pruning heuristics and without hotwords.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

NEG_INF = -math.inf


def _lse(*xs: float) -> float:
    m = max(xs)
    if m == NEG_INF:
        return NEG_INF
    return m + math.log(sum(math.exp(x - m) for x in xs))


def _extended(labels: Sequence[int], blank: int) -> list[int]:
    ext = [blank]
    for c in labels:
        ext += [c, blank]
    return ext


def ctc_forward(lp: np.ndarray, labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """alpha[t, s]: ln P of emitting ext[:s+1] in frames 0..t ([T, 2L+1])."""
    ext = _extended(labels, blank)
    T, S = lp.shape[0], len(ext)
    a = np.full((T, S), NEG_INF)
    a[0, 0] = lp[0, ext[0]]
    if S > 1:
        a[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            terms = [a[t - 1, s]]
            if s >= 1:
                terms.append(a[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                terms.append(a[t - 1, s - 2])
            a[t, s] = _lse(*terms) + lp[t, ext[s]]
    return a


def ctc_backward(lp: np.ndarray, labels: Sequence[int], blank: int = 0) -> np.ndarray:
    """beta[t, s]: ln P of emitting ext[s:] in frames t..T-1, frame t on ext[s]."""
    ext = _extended(labels, blank)
    T, S = lp.shape[0], len(ext)
    b = np.full((T, S), NEG_INF)
    b[T - 1, S - 1] = lp[T - 1, ext[S - 1]]
    if S > 1:
        b[T - 1, S - 2] = lp[T - 1, ext[S - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(S):
            terms = [b[t + 1, s]]
            if s + 1 < S:
                terms.append(b[t + 1, s + 1])
            if s + 2 < S and ext[s] != blank and ext[s] != ext[s + 2]:
                terms.append(b[t + 1, s + 2])
            b[t, s] = _lse(*terms) + lp[t, ext[s]]
    return b


def ctc_log_likelihood(lp: np.ndarray, labels: Sequence[int], blank: int = 0) -> float:
    """ln P(labels | lp) summed over all CTC alignments."""
    a = ctc_forward(lp, labels, blank)
    S = a.shape[1]
    return _lse(a[-1, S - 1], a[-1, S - 2]) if S > 1 else float(a[-1, 0])


class RefWordLM:
    """Word-LM scoring of the reference search, straight from a KenLM model."""

    def __init__(self, lm, vocab: Sequence[str], oov_score: float, oov_char: float = 0.0) -> None:
        self.lm = lm
        self.oov = oov_score
        self.oov_char = oov_char
        self.vocab = set(vocab)
        self.best: dict[str, float] = {}
        for w in vocab:
            s = lm.unigram_score(w) if lm.in_vocab(w) else oov_score
            for k in range(1, len(w) + 1):
                p = w[:k]
                self.best[p] = max(self.best.get(p, NEG_INF), s)

    def lookahead(self, partial: str) -> float:
        if not partial:
            return 0.0
        return self.best.get(partial, self.oov + self.oov_char * len(partial))

    def word(self, state: int, w: str) -> tuple[float, int]:
        if w in self.vocab:
            return self.lm.score(state, w)
        _, nx = self.lm.score(state, "<unk>")
        return self.oov + self.oov_char * len(w), nx


def prefix_beam_search(
    lp: np.ndarray,
    labels: Sequence[str],
    blank: int = 0,
    beam_width: int = 8,
    word_lm: RefWordLM | None = None,
    alpha: float = 0.0,
    beta: float = 0.0,
) -> list[tuple[str, float]]:
    """Prefix beam search; returns [(text, final score)], best first.

    A beam entry is a label tuple with (ln P ending in blank, ln P ending in
    non-blank). The LM terms follow ``ctcli.decoder``'s definition.
    """
    space = labels.index(" ") if " " in labels else -1
    beam: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, NEG_INF)}
    lmstate: dict[tuple[int, ...], tuple[float, int, int]] = {(): (0.0, 0, 0)}

    def text(p: tuple[int, ...]) -> str:
        return "".join(labels[i] for i in p)

    def partial(p: tuple[int, ...]) -> str:
        t = text(p)
        return t.rsplit(" ", 1)[-1] if space >= 0 else t

    def lm_info(p: tuple[int, ...]) -> tuple[float, int, int]:
        # (ln P of completed words, state id, completed words)
        if p in lmstate:
            return lmstate[p]
        parent = lm_info(p[:-1])
        c = p[-1]
        if c == space and partial(p[:-1]):
            s, st = word_lm.word(parent[1], partial(p[:-1]))
            r = (parent[0] + s, st, parent[2] + 1)
        else:
            r = parent
        lmstate[p] = r
        return r

    def score(p: tuple[int, ...], pb: float, pnb: float) -> float:
        sc = _lse(pb, pnb)
        if word_lm is not None:
            comm, _, nw = lm_info(p)
            sc += alpha * (comm + word_lm.lookahead(partial(p))) + beta * nw
        return sc

    for t in range(lp.shape[0]):
        nxt: dict[tuple[int, ...], list[float]] = {}

        def add(p, b=NEG_INF, nb=NEG_INF, nxt=nxt):
            cur = nxt.setdefault(p, [NEG_INF, NEG_INF])
            cur[0] = _lse(cur[0], b)
            cur[1] = _lse(cur[1], nb)

        for p, (pb, pnb) in beam.items():
            add(p, b=_lse(pb, pnb) + lp[t, blank])
            if p:
                add(p, nb=pnb + lp[t, p[-1]])
            for c in range(lp.shape[1]):
                if c == blank:
                    continue
                if p and c == p[-1]:
                    add(p + (c,), nb=pb + lp[t, c])
                else:
                    add(p + (c,), nb=_lse(pb, pnb) + lp[t, c])
        ranked = sorted(nxt.items(), key=lambda kv: -score(kv[0], *kv[1]))
        beam = {p: (v[0], v[1]) for p, v in ranked[:beam_width]}

    out = []
    for p, (pb, pnb) in beam.items():
        sc = _lse(pb, pnb)
        if word_lm is not None:
            comm, st, nw = lm_info(p)
            w = partial(p)
            if w:
                s, st = word_lm.word(st, w)
                comm += s
                nw += 1
            comm += word_lm.lm.end_score(st)
            sc += alpha * comm + beta * nw
        out.append((text(p), sc))
    out.sort(key=lambda r: -r[1])
    return out
