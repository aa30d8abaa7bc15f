"""Text corpus -> ARPA n-gram language model (interpolated modified Kneser-Ney).

This is what `ctcli lm build` runs. The estimate follows Chen & Goodman's
interpolated modified Kneser-Ney with the conventions of KenLM's `lmplz`, so
the result is a drop-in replacement for an `lmplz` ARPA:

* every sentence is ``<s> w1 .. wn </s>``; ``<s>`` is never predicted (its
  unigram log-probability is -99), ``<unk>`` receives the interpolation mass
  of the uniform distribution over the vocabulary;
* the highest order keeps raw counts; a lower-order n-gram gets its
  *adjusted* count, the number of distinct words seen to its left, except
  n-grams that start with ``<s>`` (nothing can precede them), which keep
  their raw count;
* discounts D1, D2, D3+ per order from the count-of-counts of the adjusted
  counts: ``Y = t1 / (t1 + 2 t2)``, ``Dk = k - (k + 1) Y t(k+1) / tk``;
* ``p(w|h) = (a(hw) - D(a(hw))) / sum_x a(hx) + gamma(h) p(w|h')`` with
  ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3 N3+(h.)) / sum_x a(hx)`` and the
  unigrams interpolated with the uniform distribution;
* optional count pruning (``lmplz --prune`` semantics: drop n-grams of an
  order whose adjusted count is <= the threshold, never unigrams); the
  discounted mass of a pruned n-gram moves to its context's backoff, so the
  model stays normalised, and the prefix and suffix of every kept n-gram are
  kept so that KenLM can reach it.

Counting is vectorised with numpy: the corpus is read line by line, mapped
to int32 word ids chunk by chunk, and each chunk's padded n-gram windows are
reduced to (unique rows, counts) and merged, so memory follows the number of
distinct n-grams, not the corpus length.

Text normalisation (``normalize``) matches a model's alphabet:
``"en"``: `ctcli.textnorm.normalize_en`, lowercase ``a-z`` and the
apostrophe with numbers spelled out (the English acoustic model). ``"none"``: whitespace
tokenisation of the text as is. With ``unit="char"`` every character is a
token and a space is written as the token ``<sp>`` (see lm/README.md).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import math
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ctcli.errors import CtcliError, InputError, UsageError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE_TOKEN = "<sp>"  # a space character in character-level LMs
SPECIAL = (UNK, BOS, EOS)  # ids 0, 1, 2
MAX_ORDER = 9
CHUNK_TOKENS = 1_000_000  # tokens per counting chunk (~30 MB of windows at order 4)
MERGE_ROWS = 6_000_000
WRITE_ROWS = 100_000  # ARPA lines formatted at a time  # merge pending chunk counts once they hold this many rows
DEFAULT_DISCOUNT_FALLBACK = (0.5, 1.0, 1.5)  # lmplz --discount_fallback defaults
UNITS = ("word", "char")
NORMALIZERS = ("en", "none")


class CorpusError(InputError):
    """The corpus cannot give a model: unreadable, binary, empty."""


@dataclass
class LMStats:
    """What `build_lm` did; `ctcli lm build` prints it."""

    out: str
    order: int
    unit: str
    normalize: str
    lines: int = 0  # lines read
    sentences: int = 0  # non-empty sentences used
    tokens: int = 0  # tokens used, without <s> and </s>
    skipped_non_utf8: int = 0  # lines that were not valid UTF-8 (skipped)
    skipped_binary: int = 0  # lines with NUL / control bytes (skipped)
    excluded: int = 0  # lines dropped by --exclude
    empty: int = 0  # lines empty after normalisation
    special_tokens: int = 0  # literal <s> </s> <unk> in the text, read as spaces
    vocab_size: int = 0  # including <unk>, <s>, </s>
    ngrams: list[int] = field(default_factory=list)  # entries per order written
    discounts: list[list[float]] = field(default_factory=list)  # [D1, D2, D3+] per order
    discount_fallback: list[int] = field(default_factory=list)  # orders that used fallback
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# --------------------------------------------------------------------------
# Reading and normalisation


def open_corpus(src: str | Path | IO[bytes]) -> IO[bytes]:
    """Open a corpus as a binary stream: a path (plain, gzip, bz2 or xz,
    detected by content), ``"-"`` for stdin, or an open binary file."""
    if not isinstance(src, str | Path):
        raw: IO[bytes] = src
    elif str(src) == "-":
        raw = sys.stdin.buffer
    else:
        p = Path(src)
        if not p.exists():
            raise CorpusError(f"{p}: no such file")
        if p.is_dir():
            raise CorpusError(f"{p}: is a directory")
        try:
            raw = open(p, "rb")  # noqa: SIM115 - the caller closes
        except OSError as e:
            raise CorpusError(f"{p}: {e.strerror or e}") from e
    buffered = raw if hasattr(raw, "peek") else io.BufferedReader(raw)  # type: ignore[arg-type]
    head = buffered.peek(6)[:6]  # type: ignore[union-attr]
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=buffered)  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(buffered)  # type: ignore[return-value]
    if head[:6] == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(buffered)  # type: ignore[return-value]
    return buffered  # type: ignore[return-value]


# The fast path of normalize_en: must agree with ctcli.textnorm.normalize_en
# (tests/test_lmbuild.py checks it) for ASCII text without digits or '&'.
_NON_WORD = re.compile(r"[^a-z' ]+")
_EDGE_APOS = re.compile(r"(^|\s)'+|'+(?=\s|$)")
_NEEDS_FULL = re.compile(r"[0-9&]")
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def normalize_en(text: str) -> list[str]:
    """Words of `ctcli.textnorm.normalize_en`, the project's English
    normalisation for speech (training text, LM corpora, WER alike):
    lowercase ``a-z '``, accents folded, numbers, money and times spelled
    out, apostrophes only inside words. Plain ASCII lines without digits
    take an equivalent fast path (2-3x faster on large corpora)."""
    if text.isascii() and not _NEEDS_FULL.search(text):
        return _EDGE_APOS.sub(" ", _NON_WORD.sub(" ", text.lower())).split()
    from ctcli.textnorm import normalize_en as full

    return full(text).split()


def tokenize(
    line: str, unit: str = "word", normalize: str = "en", space_token: str = SPACE_TOKEN
) -> list[str]:
    """One corpus line -> tokens, exactly as `build_lm` sees them."""
    if normalize == "en":
        words = normalize_en(line)
    elif normalize == "none":
        words = line.split()
    else:
        raise UsageError(f"unknown normalisation {normalize!r} (choose from {NORMALIZERS})")
    words = [w for w in words if w not in SPECIAL]
    if unit == "word":
        return words
    if unit == "char":
        out: list[str] = []
        for i, w in enumerate(words):
            if i:
                out.append(space_token)
            out.extend(w)
        return out
    raise UsageError(f"unknown unit {unit!r} (choose from {UNITS})")


def read_exclude(
    path: str | Path, unit: str, normalize: str, space_token: str = SPACE_TOKEN
) -> list[tuple[str, ...]]:
    """Sentences (one a line) that must not occur in the LM corpus; lines
    starting with '#' are comments."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CorpusError(f"{path}: {e.strerror or e}") from e
    text = data.decode("utf-8", errors="replace")
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        toks = tokenize(line, unit, normalize, space_token)
        if toks:
            out.append(tuple(toks))
    return out


class _Excluder:
    """Drops a corpus sentence equal to, or containing, an excluded one
    (as a run of whole tokens)."""

    def __init__(self, sentences: list[tuple[str, ...]]):
        # excluded token runs by their first token: a sentence is checked only
        # at the positions where one of them can start
        self.by_first: dict[str, set[tuple[str, ...]]] = {}
        for s in sentences:
            if s:
                self.by_first.setdefault(s[0], set()).add(tuple(s))

    def __call__(self, toks: list[str]) -> bool:
        for i, t in enumerate(toks):
            for run in self.by_first.get(t, ()):
                if tuple(toks[i : i + len(run)]) == run:
                    return True
        return False


def iter_sentences(
    stream: IO[bytes],
    stats: LMStats,
    unit: str = "word",
    normalize: str = "en",
    exclude: list[tuple[str, ...]] | None = None,
    space_token: str = SPACE_TOKEN,
) -> Iterator[list[str]]:
    """Yield token lists, one per usable line; count what is skipped."""
    excl = _Excluder(exclude or [])
    n_special = 0
    try:
        for raw in stream:
            stats.lines += 1
            if b"\x00" in raw:
                stats.skipped_binary += 1
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats.skipped_non_utf8 += 1
                continue
            if _BAD_CONTROL.search(line):
                stats.skipped_binary += 1
                continue
            if "<" in line:
                n_special += sum(line.split().count(s) for s in SPECIAL)
            toks = tokenize(line, unit, normalize, space_token)
            if not toks:
                stats.empty += 1
                continue
            if excl(toks):
                stats.excluded += 1
                continue
            yield toks
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise CorpusError(f"corpus stream is corrupt after line {stats.lines}: {e}") from e
    finally:
        stats.special_tokens = n_special


# --------------------------------------------------------------------------
# Counting


def _unique_rows(rows, counts):
    """Unique rows of an int matrix with summed counts (exact, any vocabulary)."""
    import numpy as np

    m, n = rows.shape
    if m == 0:
        return rows, counts
    key = rows[:, 0].astype(np.int64)
    span = int(rows.max()) + 1
    width = max(1, span.bit_length())
    bits = width
    for c in range(1, n):
        if bits + width > 62:  # compress the key so far to dense ids
            _, key = np.unique(key, return_inverse=True)
            key = key.astype(np.int64).ravel()
            bits = max(1, int(key.max()).bit_length())
        key = (key << width) | rows[:, c]
        bits += width
    uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
    summed = np.bincount(inv.ravel(), weights=counts, minlength=len(uniq)).astype(np.int64)
    return rows[first], summed


class _Counter:
    """Accumulates padded order-N windows of a stream of id sentences."""

    def __init__(self, order: int, bos: int):
        self.order = order
        self.bos = bos
        self.buf: list[int] = []
        self.real: list[bool] = []
        self.pending: list[tuple[Any, Any]] = []
        self.pending_rows = 0

    def add(self, ids: list[int]) -> None:
        n = self.order - 1
        self.buf.extend([self.bos] * n)
        self.buf.extend(ids)
        self.real.extend([False] * n)
        self.real.extend([True] * len(ids))
        if len(self.buf) >= CHUNK_TOKENS:
            self._flush()

    def _flush(self) -> None:
        import numpy as np
        from numpy.lib.stride_tricks import sliding_window_view

        if not self.buf:
            return
        t = np.asarray(self.buf, dtype=np.int32)
        real = np.asarray(self.real, dtype=bool)
        self.buf, self.real = [], []
        win = sliding_window_view(t, self.order)[real[self.order - 1 :]]
        rows, counts = _unique_rows(np.ascontiguousarray(win), np.ones(len(win), np.int64))
        self.pending.append((rows, counts))
        self.pending_rows += len(rows)
        if self.pending_rows > MERGE_ROWS and len(self.pending) > 1:
            self._merge()

    def _merge(self) -> None:
        import numpy as np

        rows = np.concatenate([r for r, _ in self.pending])
        counts = np.concatenate([c for _, c in self.pending])
        self.pending = [_unique_rows(rows, counts)]
        self.pending_rows = len(self.pending[0][0])

    def result(self):
        import numpy as np

        self._flush()
        if not self.pending:
            return np.zeros((0, self.order), np.int32), np.zeros(0, np.int64)
        if len(self.pending) > 1:
            self._merge()
        return self.pending.pop()


# --------------------------------------------------------------------------
# Estimation


def _discounts(adj, order: int, fallback, stats: LMStats):
    """[D0=0, D1, D2, D3+] from the count-of-counts of adjusted counts."""
    import numpy as np

    t = [int(np.count_nonzero(adj == k)) for k in range(1, 5)]
    ok = all(x > 0 for x in t)
    d = [0.0, 0.0, 0.0, 0.0]
    if ok:
        y = t[0] / (t[0] + 2 * t[1])
        for k in range(1, 4):
            d[k] = k - (k + 1) * y * t[k] / t[k - 1]
        ok = all(0 < d[k] < k for k in range(1, 4)) and all(math.isfinite(x) for x in d)
    if not ok:
        if fallback is None:
            raise CorpusError(
                f"cannot estimate discounts for order {order}: count-of-counts "
                f"{t} are too few (corpus too small); pass discount_fallback"
            )
        d = [0.0, *map(float, fallback)]
        stats.discount_fallback.append(order)
    stats.discounts.append([round(x, 6) for x in d[1:]])
    return np.asarray(d)


def _prune_thresholds(prune, order: int) -> list[int]:
    """lmplz-style thresholds -> one per order (index 0 = unigrams, always 0)."""
    if not prune:
        return [0] * order
    th = [int(x) for x in prune]
    if any(x < 0 for x in th):
        raise UsageError("prune thresholds must be >= 0")
    if th[0] != 0:
        raise UsageError("unigrams cannot be pruned: the first prune threshold must be 0")
    if any(b < a for a, b in zip(th, th[1:], strict=False)):
        raise UsageError("prune thresholds must be non-decreasing")
    if len(th) > order:
        raise UsageError(f"{len(th)} prune thresholds for an order-{order} model")
    return th + [th[-1]] * (order - len(th))


@dataclass
class _Model:
    """Kept n-grams per order: word rows, log10 prob, log10 backoff."""

    vocab: list[str]
    words: list[Any]  # per order j: int32 [m_j, j]
    logp: list[Any]
    logbo: list[Any | None]


def estimate(
    rows,
    counts,
    order: int,
    vocab: list[str],
    stats: LMStats,
    prune=None,
    discount_fallback=DEFAULT_DISCOUNT_FALLBACK,
    discounts=None,
) -> _Model:
    """Modified Kneser-Ney from unique padded windows ``rows`` [M, order]
    (ids, windows end at every real token, sentence start padded with
    order-1 ``<s>``) and their ``counts``. ``discounts`` (per order [D1, D2,
    D3+]) overrides the estimate (tests)."""
    import numpy as np

    N = order
    V = len(vocab)
    bos = vocab.index(BOS)
    th = _prune_thresholds(prune, N)

    held = [rows]  # dropped (held.clear()) once the ids are built, to free memory
    del rows

    def col(c: int):
        return held[0][:, c].astype(np.int64)

    # Right-to-left ids: element e of order j has first word first[j][e] and
    # suffix (its last j-1 words) suf[j][e], an element of order j-1.
    M = [0, V] + [0] * N
    first: list[Any] = [None, np.arange(V, dtype=np.int32)]
    suf: list[Any] = [None, None]
    raw: list[Any] = [None, np.bincount(held[0][:, N - 1], weights=counts, minlength=V)]
    rep: list[Any] = [None, None]
    keys: list[Any] = [None, None]
    sid = col(N - 1)
    for j in range(2, N + 1):
        key = col(N - j) * M[j - 1] + sid
        k, r, inv = np.unique(key, return_index=True, return_inverse=True)
        del key
        inv = inv.ravel()
        keys.append(k)
        rep.append(r.astype(np.int32))
        M[j] = len(k)
        first.append((k // M[j - 1]).astype(np.int32))
        suf.append((k % M[j - 1]).astype(np.int32))
        raw.append(np.bincount(inv, weights=counts, minlength=len(k)).astype(np.int64))
        sid = inv
    del sid, counts
    # Context (first j-1 words) of each order-j element, via windows' prefixes.
    ctx: list[Any] = [None, None]
    pid = col(N - 2)
    for j in range(2, N + 1):
        ctx.append(pid[rep[j]].astype(np.int32))
        rep[j] = None
        if j < N:
            key = col(N - 1 - j) * M[j - 1] + pid
            idx = np.searchsorted(keys[j], key)
            np.minimum(idx, M[j] - 1, out=idx)
            found = (keys[j][idx] == key) & (pid >= 0)
            del key
            pid = np.where(found, idx, -1)
            del idx, found
        keys[j] = None
    del pid
    held.clear()

    bos_start = [None] + [first[j] == bos for j in range(1, N + 1)]
    valid: list[Any] = [None, np.arange(V) != bos]
    for j in range(2, N + 1):
        valid.append(~(bos_start[j] & bos_start[j - 1][suf[j]]))
    adj: list[Any] = [None] * (N + 1)
    adj[N] = raw[N].astype(np.int64)
    for j in range(N - 1, 0, -1):
        left = np.bincount(suf[j + 1][valid[j + 1]], minlength=M[j])
        adj[j] = np.where(bos_start[j], raw[j], left).astype(np.int64)
    adj[1][bos] = 0

    # Pruning (as lmplz): thresholds on raw counts; keep prefixes and suffixes of kept.
    keep: list[Any] = [None] * (N + 1)
    for j in range(N, 0, -1):
        if j == 1:
            keep[1] = valid[1].copy()
            continue
        kj = valid[j] & (raw[j] > th[j - 1])
        if j < N:
            up = keep[j + 1]
            kj[ctx[j + 1][up]] = True
            kj[suf[j + 1][up]] = True
            kj &= valid[j]
        keep[j] = kj
    del raw

    words_out: list[Any] = []
    logp_out: list[Any] = []
    bo_out: list[Any] = []
    p_prev = None
    for j in range(1, N + 1):
        a = adj[j]
        vj = valid[j] & (a > 0)  # estimated elements (<s> and <unk> are not)
        if discounts is not None:
            d = np.asarray([0.0, *discounts[j - 1]])
            stats.discounts.append([float(x) for x in discounts[j - 1]])
        else:
            d = _discounts(a[vj], j, discount_fallback, stats)
        disc = d[np.minimum(a, 3)]
        c = np.where(valid[j], ctx[j], 0) if j > 1 else np.zeros(M[1], np.int64)
        nctx = M[j - 1] if j > 1 else 1
        w = vj.astype(np.float64)
        denom = np.bincount(c, weights=a * w, minlength=nctx)
        n1 = np.bincount(c, weights=(a == 1) * w, minlength=nctx)
        n2 = np.bincount(c, weights=(a == 2) * w, minlength=nctx)
        n3 = np.bincount(c, weights=(a >= 3) * w, minlength=nctx)
        safe = np.where(denom > 0, denom, 1.0)
        u = np.where(vj, (a - disc) / safe[c], 0.0)
        gamma = (d[1] * n1 + d[2] * n2 + d[3] * n3) / safe
        pruned = vj & ~keep[j]
        gamma += np.bincount(c[pruned], weights=u[pruned], minlength=nctx)
        if j == 1:
            n_uniform = V - 1  # every word but <s>, <unk> included
            p = u + gamma[0] / n_uniform
            p[bos] = 0.0
        else:
            p = u + gamma[c] * p_prev[suf[j]]
            # backoff of the order j-1 elements that are contexts here
            has = denom > 0
            bo = np.zeros(M[j - 1])
            bo[has] = np.log10(gamma[has])
            bo_out[j - 2] = bo[keep[j - 1]] if j - 1 > 1 else bo
        sel = keep[j] if j > 1 else np.ones(V, bool)
        with np.errstate(divide="ignore"):
            lp = np.where(p > 0, np.log10(np.where(p > 0, p, 1.0)), -99.0)
        if j == 1:
            lp[bos] = -99.0
        logp_out.append(lp[sel])
        bo_out.append(None)
        # word rows of the kept elements
        idx = np.nonzero(sel)[0]
        if j == 1:
            words_out.append(idx[:, None].astype(np.int32))
        else:
            cols = [first[j][idx]]
            e = suf[j][idx]
            for jj in range(j - 1, 1, -1):
                cols.append(first[jj][e])
                e = suf[jj][e]
            cols.append(e)  # order-1 ids are word ids
            words_out.append(np.stack(cols, axis=1).astype(np.int32))
        p_prev = p
    bo_out[N - 1] = None  # the highest order has no backoff column
    # check: every kept element must have a finite probability
    for j in range(N):
        lp = logp_out[j]
        if not np.all(np.isfinite(lp)):
            raise CtcliError(f"internal error: non-finite probability at order {j + 1}")
    return _Model(vocab, words_out, logp_out, bo_out)


# --------------------------------------------------------------------------
# Output


def write_arpa(model: _Model, out: str | Path | IO[str]) -> list[int]:
    """Write an ARPA file; returns the number of entries per order."""
    import numpy as np

    N = len(model.words)
    counts = [len(w) for w in model.words]
    vocab = np.asarray(model.vocab, dtype=object)
    own = not hasattr(out, "write")
    tmp = None
    if own:
        out_p = Path(out)  # type: ignore[arg-type]
        tmp = out_p.with_name(out_p.name + ".tmp")
        fh: IO[str] = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
    else:
        fh = out  # type: ignore[assignment]
    try:
        fh.write("\\data\\\n")
        for j, c in enumerate(counts, 1):
            fh.write(f"ngram {j}={c}\n")
        for j in range(1, N + 1):
            fh.write(f"\n\\{j}-grams:\n")
            w_all = model.words[j - 1]
            lp_all = model.logp[j - 1]
            bo_all = model.logbo[j - 1]
            for lo in range(0, len(w_all), WRITE_ROWS):  # bounded memory
                w = w_all[lo : lo + WRITE_ROWS]
                text = vocab[w[:, 0]]
                for col in range(1, j):
                    text = text + " " + vocab[w[:, col]]
                lp = lp_all[lo : lo + WRITE_ROWS].tolist()
                if bo_all is None:
                    fh.writelines(f"{p:.7g}\t{t}\n" for p, t in zip(lp, text.tolist(), strict=True))
                else:
                    bo = bo_all[lo : lo + WRITE_ROWS].tolist()
                    fh.writelines(
                        f"{p:.7g}\t{t}\t{b:.7g}\n"
                        for p, t, b in zip(lp, text.tolist(), bo, strict=True)
                    )
        fh.write("\n\\end\\\n")
    except BaseException:
        if own:
            fh.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    if own:
        fh.close()
        tmp.replace(out_p)  # type: ignore[union-attr]
    return counts


# --------------------------------------------------------------------------
# Public API


def build_lm(
    corpus: str | Path | IO[bytes] | Iterable[str],
    out: str | Path | IO[str],
    order: int = 4,
    unit: str = "word",
    normalize: str = "en",
    prune: list[int] | None = None,
    exclude: str | Path | list[str] | None = None,
    discount_fallback: tuple[float, float, float] | None = DEFAULT_DISCOUNT_FALLBACK,
    discounts: list[list[float]] | None = None,
    unigrams: str | Path | None = None,
    space_token: str = SPACE_TOKEN,
) -> LMStats:
    """Estimate an interpolated modified Kneser-Ney n-gram LM and write ARPA.

    Args:
        corpus: a path (plain text, gzip, bz2 or xz), ``"-"`` for stdin, an
            open binary stream, or an iterable of text lines. One sentence a
            line, UTF-8.
        out: ARPA path (written atomically) or a text stream.
        order: n-gram order, 2..9.
        unit: ``"word"`` or ``"char"`` (each character a token, ``<sp>`` for
            a space).
        normalize: ``"en"`` (lowercase ``a-z '``) or ``"none"``.
        prune: lmplz-style count thresholds, one per order from unigrams
            (which must be 0), e.g. ``[0, 0, 1, 1]``; the last value repeats.
        exclude: a file of sentences (or a list of sentences) that must not
            be in the model: corpus lines equal to or containing one, after
            normalisation, are dropped.
        discount_fallback: D1, D2, D3+ used for an order whose count-of-counts
            cannot give discounts (small corpora); None makes that an error.
        discounts: fixed discounts per order (overrides the estimate).
        unigrams: also write the vocabulary (no special tokens), one word a
            line, most frequent first, to this path.
        space_token: the token for a space in char mode (``<sp>``).

    Returns:
        LMStats with counts, skipped lines and discounts.

    Raises:
        CorpusError: unreadable, binary or empty corpus.
        UsageError: bad order, unit, normalisation or thresholds.
    """
    import numpy as np

    t0 = time.perf_counter()
    if not 2 <= int(order) <= MAX_ORDER:
        raise UsageError(f"order must be between 2 and {MAX_ORDER}, not {order}")
    if unit not in UNITS:
        raise UsageError(f"unknown unit {unit!r} (choose from {', '.join(UNITS)})")
    if normalize not in NORMALIZERS:
        raise UsageError(
            f"unknown normalisation {normalize!r} (choose from {', '.join(NORMALIZERS)})"
        )
    _prune_thresholds(prune, order)
    stats = LMStats(out=str(getattr(out, "name", out)), order=order, unit=unit, normalize=normalize)

    if exclude is None:
        excl = []
    elif isinstance(exclude, list):
        excl = [tuple(t) for s in exclude if (t := tokenize(s, unit, normalize, space_token))]
    else:
        excl = read_exclude(exclude, unit, normalize, space_token)

    close = None
    if isinstance(corpus, str | Path) or hasattr(corpus, "read"):
        stream = open_corpus(corpus)  # type: ignore[arg-type]
        close = stream if isinstance(corpus, str | Path) and str(corpus) != "-" else None
    else:
        stream = (s.encode("utf-8") if isinstance(s, str) else s for s in corpus)  # type: ignore[assignment]

    ids: dict[str, int] = {s: i for i, s in enumerate(SPECIAL)}
    eos = ids[EOS]
    counter = _Counter(order, ids[BOS])
    freq: list[int] = [0, 0, 0]
    try:
        for toks in iter_sentences(stream, stats, unit, normalize, excl, space_token):  # type: ignore[arg-type]
            sent = []
            for w in toks:
                i = ids.get(w)
                if i is None:
                    i = ids[w] = len(ids)
                    freq.append(0)
                freq[i] += 1
                sent.append(i)
            sent.append(eos)
            stats.sentences += 1
            stats.tokens += len(toks)
            counter.add(sent)
    finally:
        if close is not None:
            close.close()
    bad = stats.skipped_binary + stats.skipped_non_utf8
    if stats.lines and bad > max(10, stats.lines // 2):
        raise CorpusError(
            f"corpus does not look like UTF-8 text: {bad} of {stats.lines} lines are binary or not UTF-8"
        )
    if stats.tokens == 0:
        raise CorpusError(
            f"corpus is empty after normalisation ({stats.lines} lines read, "
            f"{stats.empty} empty, {stats.excluded} excluded, {bad} skipped)"
        )
    vocab = list(ids)
    stats.vocab_size = len(vocab)
    model = estimate(
        *counter.result(),
        order,
        vocab,
        stats,
        prune=prune,
        discount_fallback=discount_fallback,
        discounts=discounts,
    )
    stats.ngrams = write_arpa(model, out)
    if unigrams is not None:
        f = np.asarray(freq)
        order_ = sorted(range(3, len(vocab)), key=lambda i: (-f[i], vocab[i]))
        Path(unigrams).write_text("".join(vocab[i] + "\n" for i in order_), encoding="utf-8")
    stats.seconds = round(time.perf_counter() - t0, 3)
    return stats


# --------------------------------------------------------------------------
# Expression corpus (for the expr-char LM)

_OPS = "+-*"


def _rand_expr(rng: random.Random, depth: int, n_ops: int, max_digits: int) -> str:
    """A random expression with ``n_ops`` operators (parenthesised subterms)."""
    if n_ops == 0:
        nd = 1 if max_digits == 1 or rng.random() < 0.6 else rng.randint(2, max_digits)
        if nd == 1:
            return str(rng.randint(0, 9))
        return str(rng.randint(10 ** (nd - 1), 10**nd - 1))
    left_ops = rng.randint(0, n_ops - 1)
    left = _rand_expr(rng, depth + 1, left_ops, max_digits)
    right = _rand_expr(rng, depth + 1, n_ops - 1 - left_ops, max_digits)
    op = rng.choice(_OPS)
    if left_ops and (rng.random() < 0.5 or depth > 0 and rng.random() < 0.5):
        left = f"({left})"
    if n_ops - 1 - left_ops and rng.random() < 0.6:
        right = f"({right})"
    return f"{left}{op}{right}"


def generate_expressions(n: int, seed: int = 0) -> Iterator[str]:
    """Lines ``EXPR=RESULT`` over the alphabet ``0123456789+-*()=``.

    Half are the captcha templates (``{d}{o}{d}{o}{d}``, ``({d}{o}{d}){o}{d}``,
    ``{d}{o}({d}{o}{d})``, single digits), half longer variants: multi-digit
    numbers, up to 4 operators, nested parentheses. Deterministic for a seed.
    """
    rng = random.Random(seed)
    for _ in range(n):
        r = rng.random()
        d = [str(rng.randint(0, 9)) for _ in range(3)]
        o = [rng.choice(_OPS) for _ in range(2)]
        if r < 0.2:
            e = f"{d[0]}{o[0]}{d[1]}{o[1]}{d[2]}"
        elif r < 0.35:
            e = f"({d[0]}{o[0]}{d[1]}){o[1]}{d[2]}"
        elif r < 0.5:
            e = f"{d[0]}{o[0]}({d[1]}{o[1]}{d[2]})"
        else:
            e = _rand_expr(rng, 0, rng.randint(1, 4), rng.choice((1, 2, 3)))
        yield f"{e}={eval(e, {'__builtins__': {}}, {})}"  # noqa: S307 - our own digits/ops only
