"""Compiled core of the CTC prefix beam search (numba, imported lazily).

Everything here works on flat numpy tables so that the numba kernels need no
Python objects. ``ctcli._search`` owns the tables and the Python side (KenLM
queries, finalisation, results); ``ctcli._beam_ref`` is the readable
pure-Python version of the same algorithm that the tests compare against.

Prefixes live in a prefix tree that grows during one utterance: node 0 is the
empty prefix, every other node is (parent, label). Per node we keep the LM
and hotword bookkeeping that depends only on the prefix (column constants
below). Per frame, the beam holds up to ``beam_width`` nodes with their
blank / non-blank log-probabilities.

LM scores are not computed here: the kernel looks them up in an open-
addressing hash table keyed by (LM state id, word or token id). When a frame
needs a score that is not there, the kernel gives the frame up before the
beam is updated (prefixes it already created stay in the tree, unchanged by
the retry) and returns the missing keys; Python asks KenLM, inserts the
answers and calls the kernel again from the same frame. So results do not depend on when
the cache was filled, which keeps streaming equal to whole-utterance decoding.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def _ensure_cache_dir() -> None:
    """Point numba's on-disk cache somewhere writable when the package dir is not."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    pkg = Path(__file__).resolve().parent
    if os.access(pkg, os.W_OK):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    for cand in (
        os.path.join(base, "ctcli", "numba"),
        os.path.join(tempfile.gettempdir(), "ctcli-numba"),
    ):
        try:
            os.makedirs(cand, exist_ok=True)
            if os.access(cand, os.W_OK):
                os.environ["NUMBA_CACHE_DIR"] = cand
                try:  # numba already imported by someone else: tell its config too
                    import numba.core.config as _cfg

                    _cfg.CACHE_DIR = cand
                except Exception:  # pragma: no cover
                    pass
                return
        except OSError:
            continue


_ensure_cache_dir()

import numba as nb  # noqa: E402

# ---- node table columns ------------------------------------------------------
# int32 columns of nodes_i
PARENT = 0  # parent node id (-1 for the root)
LABEL = 1  # last label of the prefix (-1 for the root)
LMSTATE = 2  # LM state id after the last completed word (word LM) / label (char LM)
WNODE = 3  # unigram-trie node of the partial word; -1: fell off the trie (OOV)
PLEN = 4  # labels in the partial (unfinished) word
NWORDS = 5  # completed words (word LM) or emitted labels (char LM)
HWNODE = 6  # hotword-trie node; 0 = root, -1 = no match until the next word boundary
TFIRST = 7  # frame at which this node was created
NI = 8
# float64 columns of nodes_f
LMCOMM = 0  # sum of ln P of completed words / tokens
LMPART = 1  # look-ahead ln P of the partial word (max over unigrams sharing the prefix)
HWCOMM = 2  # committed hotword bonus
HWPART = 3  # provisional hotword bonus of the partial match
NF = 4

# ---- int parameters (iparams) -------------------------------------------------
P_BLANK = 0
P_SPACE = 1  # -1: no word separator
P_BEAM = 2
P_TOPN = 3
P_LMMODE = 4  # 0 none, 1 word, 2 char
P_V = 5
P_KEYMUL = 6  # LM cache key = state * KEYMUL + token
P_UNK = 7  # token id of an out-of-vocabulary word (word LM)
P_HOT = 8  # 1 when hotwords are active
NIP = 9
# ---- float parameters (fparams) -----------------------------------------------
F_ALPHA = 0
F_BETA = 1
F_OOV = 2  # ln-score of an out-of-vocabulary word (plus F_OOVCHAR per label)
F_THRESH = 3  # drop prefixes scoring below best - F_THRESH
F_CUTOFF = 4  # per-frame candidates: smallest top set with cumulative prob >= this
F_BLANKSKIP = 5  # frames with ln P(blank) >= this only extend with blank/repeat
F_MINLOGP = 6  # candidates need ln P(label) >= this
F_OOVCHAR = 7  # ln-score per label of an out-of-vocabulary word (added to F_OOV)
F_BLANKPEN = 8  # nats taken from ln P(blank) in every frame's search (not in F_BLANKSKIP's test)
NFP = 9
# ---- counters (ctr, int64) ------------------------------------------------------
C_NNODES = 0
C_BEAMN = 1
C_STAMP = 2
C_NMISS = 3
C_LMFILL = 4  # entries in the LM cache
NC = 5

ST_DONE = 0
ST_MISS = 1  # LM scores missing: keys in miss[:ctr[C_NMISS]]
ST_GROW = 2  # node table (and child hash) too small

NEG_INF = -np.inf


@nb.njit(cache=True, inline="always")
def _lse(a, b):
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


@nb.njit(cache=True)
def ctc_label_likelihood(lp, labels, blank):
    """ln P(labels | lp) over all CTC alignments (forward algorithm).
    lp: float [T, V] log-posteriors; labels: int64 [L]. -inf when T is too short."""
    t_len = lp.shape[0]
    n = labels.shape[0]
    if n == 0:
        tot = 0.0
        for t in range(t_len):
            tot += lp[t, blank]
        return tot
    s = 2 * n + 1
    ext = np.empty(s, np.int64)
    for i in range(s):
        ext[i] = blank if i % 2 == 0 else labels[i // 2]
    alpha = np.full(s, NEG_INF)
    prev = np.empty(s)
    alpha[0] = lp[0, ext[0]]
    alpha[1] = lp[0, ext[1]]
    for t in range(1, t_len):
        prev[:] = alpha
        for i in range(s):
            a = prev[i]
            if i >= 1:
                a = _lse(a, prev[i - 1])
            # a label may skip the blank before it unless it repeats the label two back
            if i >= 2 and ext[i] != blank and ext[i] != ext[i - 2]:
                a = _lse(a, prev[i - 2])
            alpha[i] = a + lp[t, ext[i]]  # -inf stays -inf
    return _lse(alpha[s - 1], alpha[s - 2])


@nb.njit(cache=True, inline="always")
def _hash(key, mask):
    h = np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)
    return np.int64((h >> np.uint64(17)) & np.uint64(mask))


@nb.njit(cache=True)
def hash_find(keys, key):
    mask = keys.shape[0] - 1
    i = _hash(key, mask)
    while True:
        k = keys[i]
        if k == key:
            return i
        if k == -1:
            return -1
        i = (i + 1) & mask


@nb.njit(cache=True)
def _hash_slot(keys, key):
    """Slot of key, or of the empty slot where it would go."""
    mask = keys.shape[0] - 1
    i = _hash(key, mask)
    while True:
        k = keys[i]
        if k == key or k == -1:
            return i
        i = (i + 1) & mask


@nb.njit(cache=True)
def lm_insert(keys, scores, nexts, new_keys, new_scores, new_nexts):
    n = 0
    for j in range(new_keys.shape[0]):
        s = _hash_slot(keys, new_keys[j])
        if keys[s] == -1:
            n += 1
        keys[s] = new_keys[j]
        scores[s] = new_scores[j]
        nexts[s] = new_nexts[j]
    return n


@nb.njit(cache=True)
def rehash_children(nodes_i, n_nodes, V, ch_keys, ch_vals):
    ch_keys[:] = -1
    for nd in range(1, n_nodes):
        key = np.int64(nodes_i[nd, PARENT]) * V + nodes_i[nd, LABEL]
        s = _hash_slot(ch_keys, key)
        ch_keys[s] = key
        ch_vals[s] = nd


@nb.njit(cache=True)
def _candidates(lpf, blank, cutoff, topn, minlogp, out, vals):
    """Fill out[] with the frame's candidate labels (not blank), most probable
    first: those with ln P >= minlogp, at most topn, stopping once their
    probability plus the blank's reaches cutoff. Returns their count."""
    n = 0
    for c in range(lpf.shape[0]):
        v = lpf[c]
        if c == blank or v < minlogp:
            continue
        # insertion sort, descending (few candidates pass minlogp)
        k = n
        while k > 0 and vals[k - 1] < v:
            vals[k] = vals[k - 1]
            out[k] = out[k - 1]
            k -= 1
        vals[k] = v
        out[k] = c
        n += 1
    cum = np.exp(np.float64(lpf[blank]))
    m = 0
    while m < n and m < topn:
        cum += np.exp(vals[m])
        m += 1
        if cum >= cutoff:
            break
    return m


@nb.njit(cache=True)
def _token_of(nodes_i, parent, c, iparams, trie_word):
    """LM cache token for extending parent with c, or -1 when none is needed."""
    mode = iparams[P_LMMODE]
    if mode == 2:
        return np.int64(c)
    if mode == 1 and c == iparams[P_SPACE] and nodes_i[parent, PLEN] > 0:
        w = nodes_i[parent, WNODE]
        if w >= 0 and trie_word[w] >= 0:
            return np.int64(trie_word[w])
        return np.int64(iparams[P_UNK])
    return np.int64(-1)


@nb.njit(cache=True)
def advance(
    lp,  # [T, V] float32 log-probs
    t0,
    t1,
    nodes_i,  # [N, NI] int32
    nodes_f,  # [N, NF] float64
    acc,  # [N, 2] float64 scratch: next pb, pnb
    stamp,  # [N] int64 scratch
    ch_keys,  # [2N] int64 child hash: parent * V + label
    ch_vals,  # [2N] int32
    beam_node,  # [B] int32
    beam_p,  # [B, 2] float64 (pb, pnb)
    ctr,  # [NC] int64
    iparams,
    fparams,
    lm_keys,
    lm_scores,
    lm_nexts,
    miss,  # [M] int64 out: missing LM keys
    trie_child,  # [Nt, V] int32
    trie_best,  # [Nt] float64
    trie_word,  # [Nt] int32
    hw_child,  # [Nh, V] int32
    hw_bonus,  # [Nh] float64
    hw_final,  # [Nh] float64 (NaN when not the end of a phrase)
):
    """Run frames t0..t1-1. Returns (next frame, status)."""
    V = iparams[P_V]
    blank = iparams[P_BLANK]
    B = iparams[P_BEAM]
    mode = iparams[P_LMMODE]
    hot = iparams[P_HOT]
    keymul = iparams[P_KEYMUL]
    alpha = fparams[F_ALPHA]
    beta = fparams[F_BETA]
    thresh = fparams[F_THRESH]
    N = nodes_i.shape[0]
    cand = np.empty(V, np.int64)
    cvals = np.empty(V, np.float64)
    maxtouch = B * (V + 1)
    touched = np.empty(maxtouch, np.int64)
    tscore = np.empty(maxtouch, np.float64)
    for t in range(t0, t1):
        lpf = lp[t]
        lpb_model = np.float64(lpf[blank])
        lpb = lpb_model - fparams[F_BLANKPEN]
        nb_ = ctr[C_BEAMN]
        if lpb_model >= fparams[F_BLANKSKIP]:
            # Blank overwhelming: no new prefixes, only blank and repeats.
            for i in range(nb_):
                nd = beam_node[i]
                pb = beam_p[i, 0]
                pnb = beam_p[i, 1]
                beam_p[i, 0] = _lse(pb, pnb) + lpb
                if nd != 0:
                    beam_p[i, 1] = pnb + lpf[nodes_i[nd, LABEL]]
                else:
                    beam_p[i, 1] = NEG_INF
            continue
        nc = _candidates(
            lpf, blank, fparams[F_CUTOFF], iparams[P_TOPN], fparams[F_MINLOGP], cand, cvals
        )
        if ctr[C_NNODES] + nb_ * nc + 1 >= N:
            return t, ST_GROW
        # Extend. A new prefix whose LM score is not cached yet is not created:
        # its key is recorded, and the frame is given up (before the beam is
        # touched) so that Python can fill the cache and run it again.
        nm = 0
        ctr[C_STAMP] += 1
        sp = ctr[C_STAMP]
        nt = 0
        for i in range(nb_):
            nd = beam_node[i]
            pb = beam_p[i, 0]
            pnb = beam_p[i, 1]
            ptot = _lse(pb, pnb)
            last = nodes_i[nd, LABEL]
            # blank: same prefix
            if stamp[nd] != sp:
                stamp[nd] = sp
                acc[nd, 0] = NEG_INF
                acc[nd, 1] = NEG_INF
                touched[nt] = nd
                nt += 1
            acc[nd, 0] = _lse(acc[nd, 0], ptot + lpb)
            # repeat of the last label: same prefix
            if nd != 0:
                acc[nd, 1] = _lse(acc[nd, 1], pnb + lpf[last])
            for j in range(nc):
                c = cand[j]
                lc = np.float64(lpf[c])
                if c == last:
                    base = pb + lc
                else:
                    base = ptot + lc
                if base == NEG_INF:
                    continue
                key = np.int64(nd) * V + c
                s = _hash_slot(ch_keys, key)
                if ch_keys[s] == key:
                    ch = ch_vals[s]
                else:
                    if mode != 0:
                        tok = _token_of(nodes_i, nd, c, iparams, trie_word)
                        if tok >= 0:
                            lkey = np.int64(nodes_i[nd, LMSTATE]) * keymul + tok
                            if hash_find(lm_keys, lkey) < 0:
                                if nm < miss.shape[0]:
                                    miss[nm] = lkey
                                    nm += 1
                                continue
                    ch = ctr[C_NNODES]
                    ctr[C_NNODES] = ch + 1
                    ch_keys[s] = key
                    ch_vals[s] = ch
                    _make_child(
                        nodes_i,
                        nodes_f,
                        nd,
                        ch,
                        c,
                        t,
                        iparams,
                        fparams,
                        lm_keys,
                        lm_scores,
                        lm_nexts,
                        trie_child,
                        trie_best,
                        trie_word,
                        hw_child,
                        hw_bonus,
                        hw_final,
                    )
                if stamp[ch] != sp:
                    stamp[ch] = sp
                    acc[ch, 0] = NEG_INF
                    acc[ch, 1] = NEG_INF
                    touched[nt] = ch
                    nt += 1
                acc[ch, 1] = _lse(acc[ch, 1], base)
        if nm > 0:
            ctr[C_NMISS] = nm
            return t, ST_MISS
        # Score and prune.
        best = NEG_INF
        for k in range(nt):
            nd = touched[k]
            sc = _lse(acc[nd, 0], acc[nd, 1])
            if mode != 0:
                sc += (
                    alpha * (nodes_f[nd, LMCOMM] + nodes_f[nd, LMPART]) + beta * nodes_i[nd, NWORDS]
                )
            elif beta != 0.0:
                sc += beta * nodes_i[nd, NWORDS]
            if hot != 0:
                sc += nodes_f[nd, HWCOMM] + nodes_f[nd, HWPART]
            tscore[k] = sc
            if sc > best:
                best = sc
        lim = best - thresh
        m = 0
        for k in range(nt):
            if tscore[k] >= lim:
                touched[m] = touched[k]
                tscore[m] = tscore[k]
                m += 1
        if m > B:
            # keep the B best; ties at the cut go to the earlier-touched prefix
            kth = np.partition(tscore[:m].copy(), m - B)[m - B]
            n_above = 0
            for k in range(m):
                if tscore[k] > kth:
                    n_above += 1
            room = B - n_above
            w = 0
            for k in range(m):
                sc = tscore[k]
                if sc > kth or (sc == kth and room > 0):
                    if sc == kth:
                        room -= 1
                    nd = touched[k]
                    beam_node[w] = nd
                    beam_p[w, 0] = acc[nd, 0]
                    beam_p[w, 1] = acc[nd, 1]
                    w += 1
            m = w
        else:
            for k in range(m):
                nd = touched[k]
                beam_node[k] = nd
                beam_p[k, 0] = acc[nd, 0]
                beam_p[k, 1] = acc[nd, 1]
        ctr[C_BEAMN] = m
    return t1, ST_DONE


@nb.njit(cache=True)
def _make_child(
    nodes_i,
    nodes_f,
    nd,
    ch,
    c,
    t,
    iparams,
    fparams,
    lm_keys,
    lm_scores,
    lm_nexts,
    trie_child,
    trie_best,
    trie_word,
    hw_child,
    hw_bonus,
    hw_final,
):
    for k in range(NI):
        nodes_i[ch, k] = nodes_i[nd, k]
    for k in range(NF):
        nodes_f[ch, k] = nodes_f[nd, k]
    nodes_i[ch, PARENT] = nd
    nodes_i[ch, LABEL] = c
    nodes_i[ch, TFIRST] = t
    mode = iparams[P_LMMODE]
    space = iparams[P_SPACE]
    if mode == 1:
        if c == space:
            if nodes_i[nd, PLEN] > 0:
                tok = _token_of(nodes_i, nd, c, iparams, trie_word)
                key = np.int64(nodes_i[nd, LMSTATE]) * iparams[P_KEYMUL] + tok
                s = hash_find(lm_keys, key)
                nodes_f[ch, LMCOMM] += lm_scores[s]
                if tok == iparams[P_UNK]:
                    nodes_f[ch, LMCOMM] += fparams[F_OOVCHAR] * nodes_i[nd, PLEN]
                nodes_i[ch, LMSTATE] = lm_nexts[s]
                nodes_i[ch, NWORDS] += 1
            nodes_f[ch, LMPART] = 0.0
            nodes_i[ch, WNODE] = 0
            nodes_i[ch, PLEN] = 0
        else:
            w = nodes_i[nd, WNODE]
            if w >= 0:
                w = trie_child[w, c]
            nodes_i[ch, WNODE] = w
            nodes_i[ch, PLEN] += 1
            if w >= 0:
                nodes_f[ch, LMPART] = trie_best[w]
            else:
                nodes_f[ch, LMPART] = fparams[F_OOV] + fparams[F_OOVCHAR] * nodes_i[ch, PLEN]
    elif mode == 2:
        key = np.int64(nodes_i[nd, LMSTATE]) * iparams[P_KEYMUL] + c
        s = hash_find(lm_keys, key)
        nodes_f[ch, LMCOMM] += lm_scores[s]
        nodes_i[ch, LMSTATE] = lm_nexts[s]
        nodes_i[ch, NWORDS] += 1
    else:
        if c == space:
            if nodes_i[nd, PLEN] > 0:
                nodes_i[ch, NWORDS] += 1
            nodes_i[ch, PLEN] = 0
        else:
            nodes_i[ch, PLEN] += 1
    if iparams[P_HOT] != 0:
        h = nodes_i[nd, HWNODE]
        if c == space:
            if h > 0 and not np.isnan(hw_final[h]):
                nodes_f[ch, HWCOMM] += hw_final[h]
                h = 0
            elif h > 0 and hw_child[h, c] >= 0:
                h = hw_child[h, c]
            else:
                h = 0
        elif h >= 0:
            h = hw_child[h, c]
        nodes_i[ch, HWNODE] = h
        nodes_f[ch, HWPART] = hw_bonus[h] if h > 0 else 0.0


@nb.njit(cache=True)
def build_trie(flat, offsets, scores, V):
    """Prefix trie of words given as label ids, sorted lexicographically.

    Word w is flat[offsets[w]:offsets[w + 1]]. Returns (child [n, V] int32,
    best [n]: max score of the words below each node, word [n]: word id
    ending at the node or -1).
    """
    nw = offsets.shape[0] - 1
    n = 1  # count nodes: each word adds its letters past the common prefix
    for w in range(nw):
        lcp = 0
        if w > 0:
            a0, a1, b0 = offsets[w - 1], offsets[w], offsets[w]
            while a0 + lcp < a1 and b0 + lcp < offsets[w + 1] and flat[a0 + lcp] == flat[b0 + lcp]:
                lcp += 1
        n += offsets[w + 1] - offsets[w] - lcp
    child = np.full((n, V), -1, np.int32)
    best = np.full(n, NEG_INF)
    word = np.full(n, -1, np.int32)
    m = 1
    for w in range(nw):
        node = 0
        s = scores[w]
        for k in range(offsets[w], offsets[w + 1]):
            c = flat[k]
            nx = child[node, c]
            if nx < 0:
                nx = m
                m += 1
                child[node, c] = nx
            node = nx
            if s > best[node]:
                best[node] = s
        if word[node] < 0:
            word[node] = w
    return child, best, word


@nb.njit(cache=True)
def viterbi_align(lp, labels, blank):
    """Most probable CTC alignment of a given labelling.

    Returns (starts, ends, peak): per label, its first frame, one past its
    last frame, and the max log-prob of the label over those frames.
    """
    T = lp.shape[0]
    L = labels.shape[0]
    S = 2 * L + 1
    starts = np.zeros(L, np.int64)
    ends = np.zeros(L, np.int64)
    peak = np.full(L, NEG_INF)
    if L == 0:
        return starts, ends, peak
    ext = np.empty(S, np.int64)
    for s in range(S):
        ext[s] = blank if s % 2 == 0 else labels[s // 2]
    dp = np.full(S, NEG_INF)
    back = np.zeros((T, S), np.int8)
    dp[0] = lp[0, ext[0]]
    dp[1] = lp[0, ext[1]]
    for t in range(1, T):
        new = np.full(S, NEG_INF)
        for s in range(S):
            best = dp[s]
            arg = 0
            if s >= 1 and dp[s - 1] > best:
                best = dp[s - 1]
                arg = 1
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2] and dp[s - 2] > best:
                best = dp[s - 2]
                arg = 2
            if best != NEG_INF:
                new[s] = best + lp[t, ext[s]]
            back[t, s] = arg
        dp = new
    s = S - 1
    if S >= 2 and dp[S - 2] > dp[S - 1]:
        s = S - 2
    if dp[s] == NEG_INF:  # infeasible (labelling too long for T): mark spans empty
        for k in range(L):
            starts[k] = 0
            ends[k] = 0
        return starts, ends, peak
    for k in range(L):
        ends[k] = -1
    for t in range(T - 1, -1, -1):
        if s % 2 == 1:
            k = s // 2
            if ends[k] == -1:
                ends[k] = t + 1
            starts[k] = t
            v = lp[t, ext[s]]
            if v > peak[k]:
                peak[k] = v
        s -= back[t, s]
    return starts, ends, peak
