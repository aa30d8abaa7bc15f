"""Prefix beam search (compiled core) against brute force, greedy, streaming, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ctc import brute_force, rand_lp

from ctcli._beam_ref import prefix_beam_search
from ctcli.decoder import (
    DEFAULT_HOTWORD_BOOST,
    DecodeResult,
    Hypothesis,
    PruningOptions,
    WordSpan,
    build_decoder,
    greedy_decode,
)
from ctcli.errors import DecoderInputError

LABELS = ["", " ", "a", "b"]
EXH = {f: getattr(PruningOptions.exhaustive(), f) for f in PruningOptions.__dataclass_fields__}


def f32(lp):
    return np.asarray(lp, np.float32)


def from_probs(rows):
    p = np.asarray(rows, np.float64)
    p = p / p.sum(1, keepdims=True)
    return np.log(np.maximum(p, 1e-12)).astype(np.float32)


@pytest.fixture(scope="module")
def exact():
    return build_decoder(LABELS, beam_width=4096, n_best=4096, **EXH)


@pytest.mark.parametrize("seed", range(6))
def test_unbounded_beam_equals_brute_force(exact, seed):
    rng = np.random.default_rng(seed)
    lp = f32(rand_lp(rng, 6, 4, scale=1.5))
    bf = brute_force(lp.astype(np.float64))
    best = max(bf, key=bf.get)
    r = exact.decode(lp)
    assert r.labels == best
    assert r.score == pytest.approx(bf[best], abs=1e-4)
    # the whole n-best is the exact distribution over labellings
    got = {h.text: h.score for h in r.nbest}
    assert len(got) == len(bf)
    for lab, ll in bf.items():
        assert got["".join(LABELS[i] for i in lab)] == pytest.approx(ll, abs=1e-4)


def test_greedy_equals_beam_one_on_peaky_input():
    # every frame has a label with p > 0.5: best path = beam 1 = most probable labelling here
    lp = from_probs(
        [[0.9, 0.05, 0.03, 0.02], [0.1, 0.1, 0.7, 0.1], [0.1, 0.1, 0.7, 0.1], [0.8, 0.1, 0.05, 0.05],
         [0.1, 0.1, 0.1, 0.7], [0.1, 0.7, 0.1, 0.1], [0.05, 0.05, 0.85, 0.05]]
    )  # fmt: skip
    g = greedy_decode(lp, LABELS)
    b1 = build_decoder(LABELS, beam_width=1).decode(lp)
    b32 = build_decoder(LABELS, beam_width=32).decode(lp)
    assert g.text == b1.text == b32.text == "ab a"
    assert [w.text for w in g.words] == ["ab", "a"]
    assert (g.words[0].start, g.words[0].end) == (1, 5)
    assert (b32.words[0].start, b32.words[0].end) == (1, 5)
    assert g.words[1].start == 6 and g.words[1].end == 7


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), T=st.integers(1, 12))
def test_greedy_equals_beam_one_when_argmax_dominant(seed, T):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, 4))
    x[np.arange(T), rng.integers(0, 4, T)] += 8.0  # argmax prob > 0.99
    lp = f32(x - np.log(np.exp(x).sum(1, keepdims=True)))
    dec = build_decoder(LABELS, beam_width=1, blank_skip_prob=2.0)
    assert dec.decode(lp).text == greedy_decode(lp, LABELS).text


@pytest.mark.parametrize("seed", range(5))
def test_compiled_core_matches_python_reference(seed):
    rng = np.random.default_rng(50 + seed)
    lp = f32(rand_lp(rng, 25, 4, scale=1.5))
    ref = prefix_beam_search(lp.astype(np.float64), LABELS, beam_width=5)
    r = build_decoder(LABELS, beam_width=5, n_best=5, **EXH).decode(lp)
    assert [h.text for h in r.nbest] == [t for t, _ in ref]
    assert [h.score for h in r.nbest] == pytest.approx([s for _, s in ref], abs=1e-4)


@pytest.mark.parametrize("pen", [0.7, -0.4])
def test_blank_penalty_is_a_shifted_blank_column(pen):
    """A penalty p searches exactly as the posteriors with ln P(blank) - p
    would (texts and scores, exhaustive search)."""
    rng = np.random.default_rng(71)
    lp = f32(rand_lp(rng, 18, 4, scale=1.5))
    shifted = lp.astype(np.float64)
    shifted[:, 0] -= pen
    norm = np.logaddexp.reduce(shifted, axis=1)  # the decoder takes normalised rows
    a = build_decoder(LABELS, beam_width=6, n_best=4, blank_penalty=pen, **EXH).decode(lp)
    b = build_decoder(LABELS, beam_width=6, n_best=4, **EXH).decode(f32(shifted - norm[:, None]))
    assert [h.text for h in a.nbest] == [h.text for h in b.nbest]
    # every path crosses every frame once: the normalisers add the same to each
    want = [h.score + float(norm.sum()) for h in b.nbest]
    assert [h.score for h in a.nbest] == pytest.approx(want, abs=1e-4)


def test_blank_penalty_recovers_a_weak_letter():
    """A letter the blank outweighs in its only frame is dropped without the
    penalty and read with it; a negative penalty drops a letter that wins
    narrowly."""
    lp = from_probs([[0.9, 0.02, 0.06, 0.02], [0.55, 0.02, 0.41, 0.02], [0.9, 0.02, 0.06, 0.02]])
    assert build_decoder(LABELS).decode(lp).text == ""
    assert build_decoder(LABELS, blank_penalty=1.0).decode(lp).text == "a"
    lp2 = from_probs([[0.999, 0.0005, 0.0003, 0.0002]] * 3 + [[0.4, 0.02, 0.56, 0.02]])
    plain, pen = (
        build_decoder(LABELS).decode(lp2),
        build_decoder(LABELS, blank_penalty=1.0).decode(lp2),
    )
    assert plain.text == pen.text == "a"
    # confidences and word times read the model's posteriors, not the penalised ones
    assert pen.conf == plain.conf and pen.words == plain.words
    assert build_decoder(LABELS, blank_penalty=-1.0).decode(lp2).text == ""
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, blank_penalty=math.inf)


def test_result_types_and_nbest():
    rng = np.random.default_rng(1)
    lp = f32(rand_lp(rng, 20, 4))
    r = build_decoder(LABELS, beam_width=8, n_best=3).decode(lp)
    assert isinstance(r, DecodeResult)
    assert 1 <= len(r.nbest) <= 3 and all(isinstance(h, Hypothesis) for h in r.nbest)
    assert [h.score for h in r.nbest] == sorted((h.score for h in r.nbest), reverse=True)
    assert r.nbest[0].text == r.text and r.score == r.nbest[0].score
    assert 0.0 <= r.conf <= 1.0
    for w in r.words:
        assert isinstance(w, WordSpan) and 0 <= w.start < w.end <= 20 and 0.0 <= w.conf <= 1.0
    assert " ".join(w.text for w in r.words) == " ".join(r.text.split())


def test_empty_output_and_single_frame():
    lp = from_probs([[0.97, 0.01, 0.01, 0.01]] * 3)
    r = build_decoder(LABELS).decode(lp)
    assert r.text == "" and r.words == [] and 0.9 < r.conf <= 1.0
    r1 = build_decoder(LABELS).decode(from_probs([[0.1, 0.1, 0.7, 0.1]]))
    assert r1.text == "a"


def test_pruned_decoder_close_to_exhaustive():
    rng = np.random.default_rng(9)
    dec = build_decoder(LABELS, beam_width=16)
    ex = build_decoder(LABELS, beam_width=16, **EXH)
    same = 0
    for _ in range(20):
        x = rng.normal(size=(30, 4)) * 3
        x[:, 0] += 2
        lp = f32(x - np.log(np.exp(x).sum(1, keepdims=True)))
        same += dec.decode(lp).text == ex.decode(lp).text
    assert same >= 18


# ---- streaming ------------------------------------------------------------------
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10**6),
    T=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 40), max_size=5),
    beam=st.sampled_from([1, 3, 8]),
)
def test_streaming_equals_whole(seed, T, cuts, beam):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(T, 4)) * 3
    x[:, 0] += 1.5
    lp = f32(x - np.log(np.exp(x).sum(1, keepdims=True)))
    dec = build_decoder(LABELS, beam_width=beam, n_best=3, hotwords=["ab"])
    whole = dec.decode(lp)
    s = dec.stream()
    bounds = sorted({0, T, *[min(c, T) for c in cuts]})
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        s.feed(lp[a:b])
        assert isinstance(s.partial(), DecodeResult)
    s.feed(lp[:0])  # an empty chunk is fine
    fin = s.finish()
    assert fin == whole


def test_stream_errors():
    dec = build_decoder(LABELS)
    s = dec.stream()
    with pytest.raises(DecoderInputError):
        s.finish()
    s.feed(from_probs([[0.1, 0.1, 0.7, 0.1]]))
    s.finish()
    with pytest.raises(DecoderInputError):
        s.feed(from_probs([[0.1, 0.1, 0.7, 0.1]]))


# ---- batch ----------------------------------------------------------------------
def test_decode_batch_in_order_with_processes():
    rng = np.random.default_rng(4)
    arrs = [f32(rand_lp(rng, int(rng.integers(5, 40)), 4)) for _ in range(7)]
    dec = build_decoder(LABELS, beam_width=8)
    seq = [dec.decode(a) for a in arrs]
    assert dec.decode_batch(arrs, jobs=1) == seq
    assert dec.decode_batch(arrs, jobs=2) == seq


def test_decode_batch_reraises_typed_errors():
    dec = build_decoder(LABELS)
    with pytest.raises(DecoderInputError):
        dec.decode_batch([from_probs([[0.1, 0.1, 0.7, 0.1]]), np.zeros((0, 4), np.float32)], jobs=2)


# ---- hotwords ---------------------------------------------------------------------
def test_hotword_flips_and_scales():
    # acoustics slightly prefer "ba" over "bb"
    lp = from_probs([[0.05, 0.05, 0.1, 0.8], [0.7, 0.05, 0.13, 0.12], [0.05, 0.05, 0.48, 0.42]])
    assert build_decoder(LABELS).decode(lp).text == "ba"
    assert build_decoder(LABELS, hotwords=[("bb", 2.0)]).decode(lp).text == "bb"
    assert build_decoder(LABELS, hotwords=["bb"]).decode(lp).text == "bb"
    assert DEFAULT_HOTWORD_BOOST > 0
    many = [("".join(rng) + "ab", 1.0) for rng in _words(1000)] + [("bb", 2.0)]
    assert build_decoder(LABELS, hotwords=many).decode(lp).text == "bb"


def _words(n):
    out, k = [], 0
    while len(out) < n:
        s, v = "", k
        for _ in range(10):
            s += "ab"[v % 2]
            v //= 2
        out.append(s)
        k += 1
    return out


def test_hotword_outside_alphabet():
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, hotwords=["xyz"])


# ---- malformed input ---------------------------------------------------------------
@pytest.mark.parametrize(
    "bad,msg",
    [
        (np.full((3, 4), np.nan, np.float32), "NaN"),
        (np.zeros((0, 4), np.float32), "T = 0"),
        (np.log(np.full((3, 4), 0.25, np.float32)).reshape(1, 3, 4), "2-D"),
        (np.full((3, 4), 0.25, np.float32), "probabilities"),
        (np.log(np.full((3, 5), 0.2, np.float32)), "alphabet"),
        (np.full((3, 4), 2.0, np.float32), "probabilities"),
        (np.array([[1.0, -1.0, -2.0, -3.0]], np.float32), "log_softmax"),
        (np.full((2, 4), -5.0, np.float32), "normalised"),
        (np.array([[0, 1, 2, 3]]), "float"),
        (np.array([[np.inf, -1, -2, -3]], np.float32), "inf"),
    ],
)
def test_malformed_inputs_raise_typed_errors(bad, msg):
    dec = build_decoder(LABELS)
    for fn in (dec.decode, lambda x: greedy_decode(x, LABELS), lambda x: dec.stream().feed(x)):
        if msg == "T = 0" and fn is not dec.decode:
            continue
        with pytest.raises(DecoderInputError, match=msg):
            fn(bad)


def test_bad_options():
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, beam_width=0)
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, bogus=1)
    with pytest.raises(DecoderInputError):
        build_decoder(["", "a", "a"])
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, blank=7)
    with pytest.raises(ValueError):  # DecoderInputError is a ValueError
        build_decoder(LABELS, lm_unit="phoneme")


def test_accepts_float64_and_torch():
    torch = pytest.importorskip("torch")
    lp = from_probs([[0.1, 0.1, 0.7, 0.1], [0.8, 0.1, 0.05, 0.05]])
    dec = build_decoder(LABELS)
    assert dec.decode(lp.astype(np.float64)).text == "a"
    assert dec.decode(torch.from_numpy(lp)).text == "a"
    assert math.isfinite(dec.decode(lp).score)


def test_hotword_phrase_across_a_space():
    # "ab ba" vs acoustically preferred "ab bb"
    spec = [[0.05, 0.05, 0.85, 0.05], [0.9, 0.04, 0.03, 0.03], [0.05, 0.05, 0.05, 0.85],
            [0.9, 0.04, 0.03, 0.03], [0.05, 0.85, 0.05, 0.05], [0.9, 0.04, 0.03, 0.03],
            [0.05, 0.05, 0.05, 0.85], [0.9, 0.04, 0.03, 0.03], [0.05, 0.05, 0.42, 0.48]]  # fmt: skip
    lp = from_probs(spec)
    assert build_decoder(LABELS).decode(lp).text == "ab bb"
    assert build_decoder(LABELS, hotwords=[("ab ba", 3.0)]).decode(lp).text == "ab ba"
    # a hotword that only matches a prefix of a word gives no lasting bonus
    r0 = build_decoder(LABELS).decode(lp)
    r1 = build_decoder(LABELS, hotwords=[("abb", 3.0)]).decode(lp)
    assert r1.text == r0.text and r1.score == pytest.approx(r0.score)


def test_partial_results_grow():
    lp = from_probs([[0.05, 0.05, 0.85, 0.05], [0.9, 0.04, 0.03, 0.03]] * 4)
    s = build_decoder(LABELS).stream()
    texts = []
    for i in range(0, 8, 2):
        s.feed(lp[i : i + 2])
        texts.append(s.partial().text)
    assert texts == ["a", "aa", "aaa", "aaaa"]
    assert s.finish().words[0].end == 7


def test_numba_cache_dir_falls_back_when_package_is_read_only(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    import numba.core.config as nb_config

    from ctcli import _beam

    monkeypatch.setattr(nb_config, "CACHE_DIR", nb_config.CACHE_DIR)  # restored afterwards
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    pkg = str(Path(_beam.__file__).resolve().parent)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == pkg else real_access(p, m))
    _beam._ensure_cache_dir()
    want = str(tmp_path / "ctcli" / "numba")
    assert os.environ["NUMBA_CACHE_DIR"] == want and nb_config.CACHE_DIR == want


def test_prefix_tree_growth_keeps_results():
    rng = np.random.default_rng(11)
    lp = f32(rand_lp(rng, 300, 4, scale=1.0))
    dec = build_decoder(LABELS, beam_width=64, n_best=5, **EXH)
    whole = dec.decode(lp)
    assert dec._spare.nodes_i.shape[0] > 1 << 14  # the node table had to grow
    s = dec.stream()
    for a in range(0, 300, 37):
        s.feed(lp[a : a + 37])
    assert s.finish() == whole
    ref = prefix_beam_search(lp[:60].astype(np.float64), LABELS, beam_width=64)
    r60 = dec.decode(lp[:60])
    assert [h.text for h in r60.nbest] == [t for t, _ in ref[:5]]
