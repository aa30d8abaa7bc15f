"""The beam search decoder object behind :func:`ctcli.decoder.build_decoder`.

Holds the compiled core's tables (``ctcli._beam``), the KenLM model and its
score cache, and turns beams into :class:`ctcli.decoder.DecodeResult`. Import
``ctcli.decoder`` for the public API; this module imports numba.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing as mp
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctcli.alphabet import SPACE, Alphabet
from ctcli.decoder import (
    DEFAULT_ALPHA_CHAR,
    DEFAULT_ALPHA_WORD,
    DEFAULT_BETA_CHAR,
    DEFAULT_BETA_WORD,
    DEFAULT_HOTWORD_BOOST,
    DEFAULT_OOV_CHAR_SCORE,
    LM_CACHE_MAX,
    MAX_BATCH_JOBS,
    DecodeResult,
    Hypothesis,
    PruningOptions,
    _empty_conf,
    _words_from_spans,
    check_log_probs,
)
from ctcli.errors import DecoderInputError, LMLoadError


# ---------------------------------------------------------------------------
# Beam search decoder
# ---------------------------------------------------------------------------
def _next_pow2(n: int) -> int:
    return 1 << max(4, (int(n) - 1).bit_length())


@dataclass(frozen=True)
class _Config:
    """Everything needed to rebuild a decoder in another process."""

    labels: tuple[str, ...]
    blank: int
    lm: str | None
    alpha: float | None
    beta: float | None
    beam_width: int
    unigrams: Any
    hotwords: Any
    lm_unit: str
    n_best: int
    pruning: PruningOptions
    oov_score: float
    oov_char_score: float = DEFAULT_OOV_CHAR_SCORE
    lm_sentence: bool = True  # False: the LM starts from no context and no </s> is scored
    blank_penalty: float = 0.0  # nats taken from ln P(blank) in the search


class Decoder:
    """CTC prefix beam search with optional KenLM fusion and hotwords.

    Build with :func:`build_decoder`. Thread-compatible, not thread-safe: use
    one decoder per thread, or :meth:`decode_batch` with ``jobs > 1``.
    """

    def __init__(self, cfg: _Config) -> None:
        from ctcli import _beam as B  # numba, lazily

        self._B = B
        self.cfg = cfg
        self.alphabet = Alphabet.from_labels(cfg.labels, cfg.blank)
        V = self.alphabet.size
        self.V = V
        self.beam_width = int(cfg.beam_width)
        if self.beam_width < 1:
            raise DecoderInputError(f"beam_width must be >= 1, got {cfg.beam_width}")
        if cfg.n_best < 1:
            raise DecoderInputError(f"n_best must be >= 1, got {cfg.n_best}")
        if cfg.lm_unit not in ("word", "char"):
            raise DecoderInputError(f"lm_unit must be 'word' or 'char', got {cfg.lm_unit!r}")
        self.n_best = int(cfg.n_best)
        self.lm = None
        mode = 0
        self.tokens: list[str] = []
        self._override: dict[int, float] = {}
        trie_child = np.full((1, V), -1, np.int32)
        trie_best = np.zeros(1, np.float64)
        trie_word = np.full(1, -1, np.int32)
        self.vocab: list[str] = []
        if cfg.lm is not None:
            from ctcli.lm import KenLM

            self.lm = KenLM(cfg.lm, sentence=cfg.lm_sentence)
            if cfg.lm_unit == "word":
                mode = 1
                trie_child, trie_best, trie_word = self._build_vocab_trie(cfg)
                self.tokens = self.vocab + ["<unk>"]
                self._override = {len(self.vocab): float(cfg.oov_score)}
            else:
                mode = 2
                from ctcli.lm import CHAR_LM_SPACE

                self.tokens = [
                    CHAR_LM_SPACE if lab == SPACE else lab for lab in self.alphabet.labels
                ]
        self.mode = mode
        if mode == 1:
            alpha = DEFAULT_ALPHA_WORD if cfg.alpha is None else cfg.alpha
            beta = DEFAULT_BETA_WORD if cfg.beta is None else cfg.beta
        elif mode == 2:
            alpha = DEFAULT_ALPHA_CHAR if cfg.alpha is None else cfg.alpha
            beta = DEFAULT_BETA_CHAR if cfg.beta is None else cfg.beta
        else:
            alpha = 0.0
            beta = 0.0 if cfg.beta is None else cfg.beta
        self.alpha, self.beta = float(alpha), float(beta)
        self.trie_child, self.trie_best, self.trie_word = trie_child, trie_best, trie_word
        self.hw_child, self.hw_bonus, self.hw_final, hot = self._build_hotwords(cfg.hotwords)
        p = cfg.pruning
        ip = np.zeros(B.NIP, np.int64)
        ip[B.P_BLANK] = self.alphabet.blank
        ip[B.P_SPACE] = self.alphabet.space
        ip[B.P_BEAM] = self.beam_width
        ip[B.P_TOPN] = max(1, min(int(p.cutoff_top_n), V))
        ip[B.P_LMMODE] = mode
        ip[B.P_V] = V
        ip[B.P_KEYMUL] = max(1, len(self.tokens))
        ip[B.P_UNK] = len(self.vocab)
        ip[B.P_HOT] = hot
        fp = np.zeros(B.NFP, np.float64)
        fp[B.F_ALPHA] = self.alpha
        fp[B.F_BETA] = self.beta
        fp[B.F_OOV] = float(cfg.oov_score)
        fp[B.F_THRESH] = float(p.beam_threshold)
        fp[B.F_CUTOFF] = float(p.cutoff_prob)
        fp[B.F_BLANKSKIP] = math.log(p.blank_skip_prob) if p.blank_skip_prob <= 1.0 else math.inf
        fp[B.F_MINLOGP] = float(p.token_min_logp)
        fp[B.F_OOVCHAR] = float(cfg.oov_char_score)
        if not math.isfinite(cfg.blank_penalty):
            raise DecoderInputError(f"blank_penalty must be finite, got {cfg.blank_penalty}")
        fp[B.F_BLANKPEN] = float(cfg.blank_penalty)
        self.iparams, self.fparams = ip, fp
        cap = 1 << 14
        self.lm_keys = np.full(cap, -1, np.int64)
        self.lm_scores = np.zeros(cap, np.float64)
        self.lm_nexts = np.zeros(cap, np.int32)
        self.lm_fill = 0
        self._miss = np.zeros(4096, np.int64)
        self._spare: _Tables | None = None

    # -- construction helpers -------------------------------------------------
    def _build_vocab_trie(self, cfg: _Config):
        from ctcli.lm import find_unigrams_file, is_arpa, load_unigrams

        src = cfg.unigrams
        if src is None:
            if is_arpa(cfg.lm):
                src = cfg.lm
            else:
                src = find_unigrams_file(cfg.lm)
                if src is None:
                    raise LMLoadError(
                        f"{cfg.lm} is a binary LM: give its unigrams (a word-per-line file "
                        "or list), or put them in <name>.unigrams.txt next to it"
                    )
        words = load_unigrams(src)
        space = self.alphabet.space
        encode = self.alphabet.encoder()
        enc: dict[tuple[int, ...], str] = {}
        for w in words:
            ids = encode(w)
            if ids and space not in ids and ids not in enc:
                enc[ids] = w
        keys = sorted(enc)  # sorted: the trie is built in one pass, nodes counted first
        vocab = [enc[k] for k in keys]
        lm = self.lm
        oov = float(cfg.oov_score)
        scores = lm.unigram_scores(vocab, oov)
        offsets = np.zeros(len(keys) + 1, np.int64)
        np.cumsum(np.array([len(k) for k in keys], np.int64), out=offsets[1:])
        flat = np.array(list(itertools.chain.from_iterable(keys)), np.int64)
        self.vocab = vocab
        return self._B.build_trie(flat, offsets, scores, self.V)

    def _build_hotwords(self, hotwords):
        V = self.V
        if not hotwords:
            return np.full((1, V), -1, np.int32), np.zeros(1), np.full(1, np.nan), 0
        items: list[tuple[list[int], float]] = []
        for h in hotwords:
            phrase, boost = (
                (h, DEFAULT_HOTWORD_BOOST) if isinstance(h, str) else (h[0], float(h[1]))
            )
            phrase = " ".join(str(phrase).split())
            if not phrase:
                continue
            ids = self.alphabet.encode(phrase)
            if ids is None:
                raise DecoderInputError(f"hotword {phrase!r} has characters outside the alphabet")
            items.append((ids, float(boost)))
        if not items:
            return np.full((1, V), -1, np.int32), np.zeros(1), np.full(1, np.nan), 0
        cap = 1 + sum(len(ids) for ids, _ in items)
        child = np.full((cap, V), -1, np.int32)
        bonus = np.zeros(cap)
        final = np.full(cap, np.nan)
        best_abs = np.zeros(cap)
        n = 1
        for ids, boost in items:
            node = 0
            L = len(ids)
            for k, c in enumerate(ids):
                nx = child[node, c]
                if nx < 0:
                    nx = n
                    n += 1
                    child[node, c] = nx
                node = nx
                part = boost * (k + 1) / L
                if abs(part) > best_abs[node]:
                    best_abs[node] = abs(part)
                    bonus[node] = part
            if np.isnan(final[node]) or boost > final[node]:
                final[node] = boost
        return np.ascontiguousarray(child[:n]), bonus[:n].copy(), final[:n].copy(), 1

    # -- LM cache -------------------------------------------------------------
    def _resolve(self, n: int) -> None:
        keys, scores, nexts = self.lm.resolve(
            self._miss[:n].copy(), int(self.iparams[self._B.P_KEYMUL]), self.tokens, self._override
        )
        need = self.lm_fill + keys.shape[0]
        if need * 2 > self.lm_keys.shape[0]:
            self._grow_lm(need)
        self.lm_fill += self._B.lm_insert(
            self.lm_keys, self.lm_scores, self.lm_nexts, keys, scores, nexts
        )

    def _grow_lm(self, need: int) -> None:
        B = self._B
        cap = _next_pow2(need * 4)
        old = self.lm_keys >= 0
        ok, os_, on = self.lm_keys[old], self.lm_scores[old], self.lm_nexts[old]
        self.lm_keys = np.full(cap, -1, np.int64)
        self.lm_scores = np.zeros(cap, np.float64)
        self.lm_nexts = np.zeros(cap, np.int32)
        self.lm_fill = B.lm_insert(self.lm_keys, self.lm_scores, self.lm_nexts, ok, os_, on)

    def clear_cache(self) -> None:
        """Forget cached LM scores (they are kept across utterances)."""
        self.lm_keys[:] = -1
        self.lm_fill = 0

    # -- decoding -------------------------------------------------------------
    def _tables(self) -> _Tables:
        t = self._spare
        self._spare = None
        if t is None:
            t = _Tables(self)
        else:
            t.reset()
        return t

    def decode(self, log_probs: Any) -> DecodeResult:
        """Decode one utterance: float32 [T, V] natural-log posteriors."""
        lp = check_log_probs(log_probs, self.V)
        if self.lm_fill > LM_CACHE_MAX:
            self.clear_cache()
        tab = self._tables()
        try:
            tab.run(lp)
            return self._result(tab, lp)
        finally:
            self._spare = tab

    def decode_batch(self, batch: Sequence[Any], jobs: int = 1) -> list[DecodeResult]:
        """Decode many utterances; results in input order.

        With ``jobs > 1`` a process pool is used; on platforms with ``fork``
        the workers inherit this decoder (the LM is never pickled), elsewhere
        each worker builds its own decoder once.
        """
        arrays = list(batch)
        jobs = max(1, min(int(jobs), MAX_BATCH_JOBS, len(arrays) or 1))
        if jobs == 1 or len(arrays) < 2:
            return [self.decode(a) for a in arrays]
        global _WORKER_DECODER, _WORKER_INPUTS
        if "fork" in mp.get_all_start_methods():
            _WORKER_DECODER, _WORKER_INPUTS = self, arrays
            try:
                with mp.get_context("fork").Pool(jobs) as pool:
                    out = pool.map(_decode_inherited, range(len(arrays)), chunksize=1)
            finally:
                _WORKER_DECODER, _WORKER_INPUTS = None, None
        else:  # pragma: no cover - spawn platforms
            with mp.get_context("spawn").Pool(jobs, _init_worker, (self.cfg,)) as pool:
                out = pool.map(_decode_in_worker, arrays, chunksize=1)
        errs = [o for o in out if isinstance(o, BaseException)]
        if errs:
            raise errs[0]
        return out

    def stream(self) -> Stream:
        """A streaming decoder: feed(chunk), partial(), finish()."""
        return Stream(self)

    # -- finalisation ---------------------------------------------------------
    def _backtrack(self, tab: _Tables, nd: int) -> list[int]:
        B = self._B
        out: list[int] = []
        ni = tab.nodes_i
        while nd > 0:
            out.append(int(ni[nd, B.LABEL]))
            nd = int(ni[nd, B.PARENT])
        out.reverse()
        return out

    def _final_scores(self, tab: _Tables) -> list[tuple[float, float, float, int]]:
        """(total, acoustic, lm term, node) of each beam entry, best first."""
        B = self._B
        ni, nf = tab.nodes_i, tab.nodes_f
        out = []
        lm = self.lm
        for i in range(int(tab.ctr[B.C_BEAMN])):
            nd = int(tab.beam_node[i])
            pb, pnb = float(tab.beam_p[i, 0]), float(tab.beam_p[i, 1])
            ac = np.logaddexp(pb, pnb)
            lmln = float(nf[nd, B.LMCOMM])
            nw = int(ni[nd, B.NWORDS])
            if self.mode == 1:
                st = int(ni[nd, B.LMSTATE])
                if ni[nd, B.PLEN] > 0:
                    w = int(ni[nd, B.WNODE])
                    wid = int(self.trie_word[w]) if w >= 0 else -1
                    if wid >= 0:
                        s, st = lm.score(st, self.vocab[wid])
                    else:
                        _, st = lm.score(st, "<unk>")
                        plen = int(ni[nd, B.PLEN])
                        s = float(self.cfg.oov_score) + float(self.cfg.oov_char_score) * plen
                    lmln += s
                    nw += 1
                if self.cfg.lm_sentence:
                    lmln += lm.end_score(st)
            elif self.mode == 2:
                if self.cfg.lm_sentence:
                    lmln += lm.end_score(int(ni[nd, B.LMSTATE]))
            else:
                if ni[nd, B.PLEN] > 0:
                    nw += 1
            lmterm = self.alpha * lmln + self.beta * nw if self.mode else self.beta * nw
            hot = 0.0
            if self.iparams[B.P_HOT]:
                hot = float(nf[nd, B.HWCOMM])
                h = int(ni[nd, B.HWNODE])
                if h > 0 and not math.isnan(self.hw_final[h]):
                    hot += float(self.hw_final[h])
            out.append((float(ac + lmterm + hot), float(ac), float(lmterm), nd))
        out.sort(key=lambda r: -r[0])
        return out

    def _result(self, tab: _Tables, lp: np.ndarray) -> DecodeResult:
        fin = self._final_scores(tab)
        nbest = []
        best_ids: list[int] = []
        for k, (tot, ac, lmt, nd) in enumerate(fin[: self.n_best]):
            ids = self._backtrack(tab, nd)
            if k == 0:
                best_ids = ids
            nbest.append(Hypothesis(self.alphabet.text(ids), tot, ac, lmt))
        if not nbest:  # pragma: no cover - the beam is never empty
            return DecodeResult("", -math.inf, 0.0, [], [], ())
        if lp.shape[0] and best_ids:
            starts, ends, peaks = self._B.viterbi_align(
                lp, np.asarray(best_ids, np.int64), self.alphabet.blank
            )
            words, conf = _words_from_spans(self.alphabet, best_ids, starts, ends, peaks)
        else:
            words, conf = [], _empty_conf(lp, self.alphabet.blank)
        return DecodeResult(
            text=nbest[0].text,
            score=nbest[0].score,
            conf=conf,
            words=words,
            nbest=nbest,
            labels=tuple(best_ids),
        )


class _Tables:
    """Per-utterance search state: prefix tree, beam, scratch."""

    def __init__(self, dec: Decoder, cap: int = 1 << 14) -> None:
        B = dec._B
        self.dec = dec
        self.B = B
        self._alloc(cap)
        self.ctr = np.zeros(B.NC, np.int64)
        self.beam_node = np.zeros(dec.beam_width, np.int32)
        self.beam_p = np.zeros((dec.beam_width, 2), np.float64)
        self.reset()

    def _alloc(self, cap: int) -> None:
        B = self.B
        self.nodes_i = np.zeros((cap, B.NI), np.int32)
        self.nodes_f = np.zeros((cap, B.NF), np.float64)
        self.acc = np.zeros((cap, 2), np.float64)
        self.stamp = np.zeros(cap, np.int64)
        self.ch_keys = np.full(2 * cap, -1, np.int64)
        self.ch_vals = np.zeros(2 * cap, np.int32)

    def reset(self) -> None:
        B = self.B
        n_used = int(self.ctr[B.C_NNODES]) if hasattr(self, "ctr") else 0
        if n_used > 1:
            self.ch_keys[:] = -1
        self.nodes_i[0, :] = 0
        self.nodes_i[0, B.PARENT] = -1
        self.nodes_i[0, B.LABEL] = -1
        self.nodes_f[0, :] = 0.0
        self.ctr[B.C_NNODES] = 1
        self.ctr[B.C_BEAMN] = 1
        self.beam_node[0] = 0
        self.beam_p[0, 0] = 0.0
        self.beam_p[0, 1] = -np.inf
        self.t = 0

    def _grow(self) -> None:
        B = self.B
        n = int(self.ctr[B.C_NNODES])
        old_i, old_f, old_s = self.nodes_i, self.nodes_f, self.stamp
        self._alloc(_next_pow2(self.nodes_i.shape[0] * 2 + self.dec.beam_width * self.dec.V * 2))
        self.nodes_i[:n] = old_i[:n]
        self.nodes_f[:n] = old_f[:n]
        self.stamp[:n] = old_s[:n]
        B.rehash_children(self.nodes_i, n, self.dec.V, self.ch_keys, self.ch_vals)

    def run(self, lp: np.ndarray) -> None:
        """Advance the beam over all frames of lp."""
        dec, B = self.dec, self.B
        t, T = 0, lp.shape[0]
        while t < T:
            t, st = B.advance(
                lp, t, T, self.nodes_i, self.nodes_f, self.acc, self.stamp, self.ch_keys,
                self.ch_vals, self.beam_node, self.beam_p, self.ctr, dec.iparams, dec.fparams,
                dec.lm_keys, dec.lm_scores, dec.lm_nexts, dec._miss, dec.trie_child,
                dec.trie_best, dec.trie_word, dec.hw_child, dec.hw_bonus, dec.hw_final,
            )  # fmt: skip
            if st == B.ST_MISS:
                dec._resolve(int(self.ctr[B.C_NMISS]))
            elif st == B.ST_GROW:
                self._grow()
        self.t += T


class Stream:
    """Chunk-by-chunk decoding; the beam is carried across chunks.

    ``finish()`` returns exactly what ``Decoder.decode`` returns on the
    concatenation of all chunks.
    """

    def __init__(self, dec: Decoder) -> None:
        self.dec = dec
        self.tab = _Tables(dec)
        self.chunks: list[np.ndarray] = []
        self.finished = False

    def feed(self, chunk: Any) -> None:
        """Add frames: float32 [t, V] natural-log posteriors (t may be 0)."""
        if self.finished:
            raise DecoderInputError("stream already finished")
        lp = check_log_probs(chunk, self.dec.V, allow_empty=True)
        if lp.shape[0]:
            self.tab.run(lp)
            self.chunks.append(lp)

    def _all(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((0, self.dec.V), np.float32)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks, axis=0)]
        return self.chunks[0]

    def partial(self) -> DecodeResult:
        """Best hypothesis so far (the last word completed provisionally)."""
        return self.dec._result(self.tab, self._all())

    def finish(self) -> DecodeResult:
        """Final result; raises DecoderInputError if no frame was fed."""
        lp = self._all()
        if lp.shape[0] == 0:
            raise DecoderInputError("log_probs has no frames (T = 0)")
        self.finished = True
        return self.dec._result(self.tab, lp)


# ---------------------------------------------------------------------------
# Batch workers
# ---------------------------------------------------------------------------
_WORKER_DECODER: Decoder | None = None
_WORKER_INPUTS: list | None = None


def _decode_inherited(i: int):
    try:
        return _WORKER_DECODER.decode(_WORKER_INPUTS[i])
    except Exception as e:  # returned, re-raised in the parent
        return e


def _init_worker(cfg: _Config) -> None:  # pragma: no cover - spawn platforms
    global _WORKER_DECODER
    _WORKER_DECODER = Decoder(cfg)


def _decode_in_worker(a):  # pragma: no cover - spawn platforms
    try:
        return _WORKER_DECODER.decode(a)
    except Exception as e:
        return e
