"""ctcli.lmbuild: modified Kneser-Ney estimation, ARPA output, corpus input."""

from __future__ import annotations

import gzip
import io
import math
import random
from collections import Counter, defaultdict
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctcli.errors import InputError, UsageError
from ctcli.lmbuild import (
    CorpusError,
    build_lm,
    generate_expressions,
    normalize_en,
    tokenize,
)

kenlm = pytest.importorskip("kenlm")

FIXED = [[0.5, 1.0, 1.5]] * 4  # D1, D2, D3+ for every order (hand computation)


def read_arpa(path) -> dict[tuple[str, ...], tuple[float, float]]:
    """{ngram: (log10 p, log10 backoff)} from an ARPA file."""
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 2:
                out[tuple(parts[1].split())] = (
                    float(parts[0]),
                    float(parts[2]) if len(parts) > 2 else 0.0,
                )
    return out


# --------------------------------------------------------------------------
# Hand-computed modified Kneser-Ney


def test_hand_computed_trigram(tmp_path):
    """Corpus 'a b' x2, 'b a'; order 3; D = 0.5, 1, 1.5 at every order.

    Adjusted counts: unigrams a = b = </s> = 2 (two distinct left words each),
    so p(x) = (2 - 1)/6 + gamma0/4 with gamma0 = 1 * 3/6: p = 7/24, and
    p(<unk>) = 1/8 (uniform over the 4 words other than <s>).
    Bigrams: '<s> a' keeps its raw count 2, '<s> b' 1; 'a b', 'a </s>', 'b a',
    'b </s>' have one left word each. p(a|<s>) = (2-1)/3 + (1/2) 7/24 = 23/48,
    p(b|<s>) = (1-.5)/3 + 7/48 = 15/48, p(b|a) = (1-.5)/2 + (1/2) 7/24 = 19/48.
    Trigrams: p(b|<s> a) = (2-1)/2 + (1/2) p(b|a) = 67/96, likewise
    p(</s>|a b) = p(a|<s> b) = p(</s>|b a) = 67/96.
    """
    out = tmp_path / "toy.arpa"
    stats = build_lm(["a b", "a b", "b a"], out, order=3, normalize="none", discounts=FIXED)
    assert stats.ngrams == [5, 6, 4]
    arpa = read_arpa(out)
    F = Fraction
    expect = {
        ("a",): F(7, 24), ("b",): F(7, 24), ("</s>",): F(7, 24), ("<unk>",): F(1, 8),
        ("<s>", "a"): F(23, 48), ("<s>", "b"): F(15, 48),
        ("a", "b"): F(19, 48), ("a", "</s>"): F(19, 48),
        ("b", "a"): F(19, 48), ("b", "</s>"): F(19, 48),
        ("<s>", "a", "b"): F(67, 96), ("a", "b", "</s>"): F(67, 96),
        ("<s>", "b", "a"): F(67, 96), ("b", "a", "</s>"): F(67, 96),
    }  # fmt: skip
    for ng, p in expect.items():
        assert arpa[ng][0] == pytest.approx(math.log10(p), abs=2e-6), ng
    half = math.log10(0.5)
    for ctx in [("<s>",), ("a",), ("b",), ("<s>", "a"), ("a", "b"), ("<s>", "b"), ("b", "a")]:
        assert arpa[ctx][1] == pytest.approx(half, abs=2e-6), ctx
    for ctx in [("</s>",), ("<unk>",), ("a", "</s>"), ("b", "</s>")]:
        assert arpa[ctx][1] == 0.0, ctx
    assert arpa[("<s>",)][0] == -99.0
    # unigram distribution sums to one
    assert sum(10 ** arpa[(w,)][0] for w in ["a", "b", "</s>", "<unk>"]) == pytest.approx(
        1, abs=1e-5
    )
    # round trip through KenLM: log10 p(a b </s>) = log10(23/48 * 67/96 * 67/96)
    m = kenlm.Model(str(out))
    assert m.order == 3
    assert m.score("a b", bos=True, eos=True) == pytest.approx(
        math.log10(F(23, 48) * F(67, 96) * F(67, 96)), abs=1e-5
    )
    # unseen trigram 'b b' backs off: p(b|<s> b) = gamma(<s> b) p(b|b) = 1/2 * (1/2 * 7/24)
    assert list(m.full_scores("b b", bos=True, eos=False))[1][0] == pytest.approx(
        math.log10(0.5 * 0.5 * 7 / 24), abs=1e-5
    )


def test_discounts_from_count_of_counts(tmp_path):
    """Dk = k - (k+1) Y t(k+1)/tk, Y = t1/(t1 + 2 t2), on highest-order counts."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(30)]
    lines = [
        " ".join(rng.choice(words[: rng.randint(3, 30)]) for _ in range(rng.randint(1, 9)))
        for _ in range(800)
    ]
    stats = build_lm(lines, tmp_path / "d.arpa", order=2, normalize="none")
    assert stats.discount_fallback == [1]  # 31 unigrams: too few count-of-counts
    big = Counter()
    for line in lines:
        toks = ["<s>", *line.split(), "</s>"]
        big.update(zip(toks, toks[1:], strict=False))
    t = [sum(1 for c in big.values() if c == k) for k in range(1, 5)]
    y = t[0] / (t[0] + 2 * t[1])
    want = [k - (k + 1) * y * t[k] / t[k - 1] for k in (1, 2, 3)]
    assert stats.discounts[1] == pytest.approx(want, abs=1e-5)


# --------------------------------------------------------------------------
# Against an independent textbook implementation (dicts of tuples)


def reference_mkn(sentences: list[list[str]], order: int, fallback=(0.5, 1.0, 1.5)):
    """Interpolated modified Kneser-Ney, lmplz conventions, straight from the
    definitions. Returns {ngram: (p, backoff or None)} for every seen ngram."""
    raw = [Counter() for _ in range(order + 1)]
    for s in sentences:
        toks = ["<s>", *s, "</s>"]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                g = tuple(toks[i : i + n])
                if g != ("<s>",):
                    raw[n][g] += 1
    adj = [dict() for _ in range(order + 1)]
    adj[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left = Counter(g[1:] for g in raw[n + 1])
        adj[n] = {g: (c if g[0] == "<s>" else left[g]) for g, c in raw[n].items()}
    vocab = {g[0] for g in raw[1]} | {"<unk>"}
    disc = [None]
    for n in range(1, order + 1):
        t = [sum(1 for c in adj[n].values() if c == k) for k in range(1, 5)]
        d = None
        if all(t):
            y = t[0] / (t[0] + 2 * t[1])
            d = [k - (k + 1) * y * t[k] / t[k - 1] for k in (1, 2, 3)]
            if not all(0 < d[k - 1] < k for k in (1, 2, 3)):
                d = None
        disc.append(d or list(fallback))
    probs: dict[tuple, float] = {}
    gammas: dict[tuple, float] = {}
    for n in range(1, order + 1):
        by_ctx = defaultdict(list)
        for g, a in adj[n].items():
            by_ctx[g[:-1]].append((g, a))
        for ctx, items in by_ctx.items():
            total = sum(a for _, a in items)
            d = disc[n]
            gamma = sum(d[min(a, 3) - 1] for _, a in items) / total
            gammas[ctx] = gamma
            for g, a in items:
                lower = probs[g[1:]] if n > 1 else 1 / len(vocab)
                probs[g] = (a - d[min(a, 3) - 1]) / total + gamma * lower
        if n == 1:
            probs[("<unk>",)] = gammas[()] / len(vocab)
    return {g: (p, gammas.get(g)) for g, p in probs.items()}


sentence_st = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=7)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(sentence_st, min_size=1, max_size=40), st.integers(2, 4))
def test_matches_reference(tmp_path, sents, order):
    out = tmp_path / "r.arpa"
    build_lm([" ".join(s) for s in sents], out, order=order, normalize="none")
    got = read_arpa(out)
    ref = reference_mkn(sents, order)
    assert set(got) == set(ref) | {("<s>",)}
    for g, (p, bo) in ref.items():
        assert got[g][0] == pytest.approx(math.log10(p), abs=1e-5), g
        want_bo = 0.0 if bo is None or len(g) == order else math.log10(bo)
        assert got[g][1] == pytest.approx(want_bo, abs=1e-5), g


def _sum_next(model, context: list[str], vocab: list[str]) -> float:
    state = kenlm.State()
    model.BeginSentenceWrite(state)
    for w in context:
        nxt = kenlm.State()
        model.BaseScore(state, w, nxt)
        state = nxt
    out = kenlm.State()
    return sum(10 ** model.BaseScore(state, w, out) for w in vocab)


@pytest.mark.parametrize("prune", [None, [0, 1], [0, 0, 1], [0, 1, 1, 2]])
def test_normalised_through_kenlm(tmp_path, prune):
    """sum_w p(w | h) = 1 for many contexts, with and without pruning."""
    rng = random.Random(7)
    words = "the a cat dog sat on mat ran far".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 8))) for _ in range(300)]
    out = tmp_path / "n.arpa"
    stats = build_lm(lines, out, order=4, normalize="none", prune=prune)
    full = build_lm(lines, tmp_path / "full.arpa", order=4, normalize="none")
    if prune and max(prune) > 0:
        assert sum(stats.ngrams) < sum(full.ngrams)
    model = kenlm.Model(str(out))
    vocab = [*words, "</s>", "<unk>"]
    for _ in range(40):
        ctx = [rng.choice(words) for _ in range(rng.randint(0, 4))]
        assert _sum_next(model, ctx, vocab) == pytest.approx(1.0, abs=1e-4), ctx


def test_pruning_keeps_contexts(tmp_path):
    rng = random.Random(1)
    words = "one two three four five six".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(2, 9))) for _ in range(200)]
    out = tmp_path / "p.arpa"
    build_lm(lines, out, order=4, normalize="none", prune=[0, 1, 1, 1])
    arpa = read_arpa(out)
    for g in arpa:
        if len(g) > 1:
            assert g[:-1] in arpa and g[1:] in arpa, g  # prefix and suffix kept
    with pytest.raises(UsageError):
        build_lm(lines, tmp_path / "x.arpa", order=3, prune=[1, 1])
    with pytest.raises(UsageError):
        build_lm(lines, tmp_path / "x.arpa", order=3, prune=[0, 2, 1])


# --------------------------------------------------------------------------
# Units, normalisation, exclusion


def test_normalize_en():
    assert normalize_en("Don't STOP, café-au-lait 42 times! 'Tis ‘quoted’ & more") == [
        "don't", "stop", "cafe", "au", "lait", "forty", "two", "times", "tis", "quoted",
        "and", "more",
    ]  # fmt: skip
    assert tokenize("a <s> b </s> <unk>", "word", "none") == ["a", "b"]


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=40)
    | st.text(alphabet=st.sampled_from("aZ'’` &1.,-$%:\té"), max_size=30)
)
def test_normalize_en_agrees_with_textnorm(text):
    """The fast path gives exactly the project's speech normalisation."""
    from ctcli.textnorm import normalize_en as speech_norm

    assert normalize_en(text) == speech_norm(text).split()


def test_char_mode(tmp_path):
    out = tmp_path / "c.arpa"
    lines = list(generate_expressions(300, seed=5))
    stats = build_lm(lines + ["ab cd"], out, order=5, unit="char", normalize="none")
    arpa = read_arpa(out)
    unis = {g[0] for g in arpa if len(g) == 1}
    assert set("0123456789+-*=") <= unis
    assert "<sp>" in unis and " " not in unis
    assert all(len(t) == 1 or t.startswith("<") for t in unis)
    assert stats.unit == "char"
    m = kenlm.Model(str(out))
    good = m.score(" ".join("1+2=3"), bos=True, eos=True)
    bad = m.score(" ".join("=+=)3"), bos=True, eos=True)
    assert good > bad + 3
    assert tokenize("1 + 2", "char", "none") == ["1", "<sp>", "+", "<sp>", "2"]
    assert tokenize("ab  c", "char", "en", space_token="|") == ["a", "b", "|", "c"]
    build_lm(["ab c", "a bc"], out, order=3, unit="char", space_token="|")
    assert ("a", "|", "b") in read_arpa(out)


def test_expressions_are_correct_and_deterministic():
    a = list(generate_expressions(500, seed=11))
    assert a == list(generate_expressions(500, seed=11))
    assert a != list(generate_expressions(500, seed=12))
    for line in a:
        expr, res = line.rsplit("=", 1)
        assert set(line) <= set("0123456789+-*()=")
        assert eval(expr) == int(res)  # noqa: S307
    assert any(line.count("(") >= 2 for line in a)
    assert any(len(line.split("=")[0]) == 5 for line in a)  # the d o d o d template


def test_exclude(tmp_path):
    ex = tmp_path / "ex.txt"
    ex.write_text("The cat sat.\n")
    lines = ["the cat sat", "THE CAT SAT!", "so the cat sat down", "the cat", "a dog ran"]
    out = tmp_path / "e.arpa"
    stats = build_lm(lines, out, order=3, exclude=ex)
    assert stats.excluded == 3
    arpa = read_arpa(out)
    assert ("the", "cat", "sat") not in arpa and ("cat", "sat") not in arpa
    assert ("the", "cat") in arpa


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from("ab c dd e".split()), max_size=4), max_size=5),
    st.lists(st.sampled_from("ab c dd e".split()), max_size=8),
)
def test_excluder_matches_whole_token_runs(excluded, sentence):
    from ctcli.lmbuild import _Excluder

    runs = [tuple(r) for r in excluded if r]
    padded = f" {' '.join(sentence)} "
    expected = any(f" {' '.join(r)} " in padded for r in runs)
    assert _Excluder([tuple(r) for r in excluded])(sentence) == expected


def test_unigram_list(tmp_path):
    uni = tmp_path / "u.txt"
    build_lm(["b a b", "c b"], tmp_path / "u.arpa", order=2, unigrams=uni)
    assert uni.read_text().split("\n") == ["b", "a", "c", ""]


# --------------------------------------------------------------------------
# Input forms and bad input


def test_gzip_stdin_and_plain_agree(tmp_path, monkeypatch):
    lines = [f"line {i % 7} word {i % 3}" for i in range(50)]
    text = "\n".join(lines) + "\n"
    plain, gz = tmp_path / "c.txt", tmp_path / "c.txt.gz"
    plain.write_text(text)
    gz.write_bytes(gzip.compress(text.encode()))
    build_lm(plain, tmp_path / "a.arpa", order=3)
    build_lm(gz, tmp_path / "b.arpa", order=3)

    class FakeStdin:
        buffer = io.BufferedReader(io.BytesIO(text.encode()))

    monkeypatch.setattr("sys.stdin", FakeStdin)
    build_lm("-", tmp_path / "c.arpa", order=3)
    a = (tmp_path / "a.arpa").read_text()
    assert a == (tmp_path / "b.arpa").read_text() == (tmp_path / "c.arpa").read_text()
    import bz2
    import lzma

    for name, pack in (("c.bz2", bz2.compress), ("c.xz", lzma.compress)):
        (tmp_path / name).write_bytes(pack(text.encode()))
        build_lm(tmp_path / name, tmp_path / "d.arpa", order=3)
        assert (tmp_path / "d.arpa").read_text() == a, name


def test_empty_and_missing(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(CorpusError, match="empty"):
        build_lm(empty, tmp_path / "x.arpa")
    punct = tmp_path / "punct.txt"
    punct.write_text("!!! ...\n---\n")
    with pytest.raises(CorpusError, match="empty"):
        build_lm(punct, tmp_path / "x.arpa")
    with pytest.raises(CorpusError, match="no such file"):
        build_lm(tmp_path / "nope.txt", tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()
    assert issubclass(CorpusError, InputError)


def test_binary_junk_is_an_error(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(0).randbytes(200_000))
    with pytest.raises(CorpusError, match="UTF-8"):
        build_lm(junk, tmp_path / "x.arpa")
    assert not (tmp_path / "x.arpa").exists()


def test_corrupt_gzip_is_an_error(tmp_path):
    data = gzip.compress(("hello world\n" * 5000).encode())
    bad = tmp_path / "bad.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match="corrupt"):
        build_lm(bad, tmp_path / "x.arpa")


def test_bad_lines_are_counted_skips(tmp_path):
    c = tmp_path / "mixed.txt"
    good = [b"the cat sat on the mat", b"a dog ran far"] * 20
    c.write_bytes(
        b"\n".join([*good, b"caf\xe9 latin1 line", b"nul\x00byte", b"esc \x1b[31m red"]) + b"\n"
    )
    stats = build_lm(c, tmp_path / "m.arpa", order=3)
    assert stats.skipped_non_utf8 == 1
    assert stats.skipped_binary == 2
    assert stats.sentences == 40
    assert ("latin",) not in read_arpa(tmp_path / "m.arpa")


def test_usage_errors(tmp_path):
    for kw in [{"order": 1}, {"order": 12}, {"unit": "byte"}, {"normalize": "fr"}]:
        with pytest.raises(UsageError):
            build_lm(["a b"], tmp_path / "x.arpa", **kw)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_give_a_bad_model(tmp_path, data):
    """Any byte string: either a clear CorpusError or a model KenLM loads."""
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    out = tmp_path / "o.arpa"
    out.unlink(missing_ok=True)
    try:
        build_lm(src, out, order=3, normalize="none")
    except CorpusError:
        assert not out.exists()
        return
    kenlm.Model(str(out))


# --------------------------------------------------------------------------
# Against KenLM's lmplz itself (when lm/build_kenlm_tools.sh has been run)


def _zipf_corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(400)]
    weights = [1 / (i + 1) for i in range(400)]
    return [" ".join(rng.choices(words, weights, k=rng.randint(1, 12))) for _ in range(n)]


@pytest.mark.parametrize("prune", [None, ["0", "1", "1", "2"]])
def test_identical_to_lmplz(tmp_path, prune):
    import subprocess

    from ctcli.cli_lm import find_kenlm_tool

    lmplz = find_kenlm_tool("lmplz")
    if lmplz is None:
        pytest.skip("lmplz not built (lm/build_kenlm_tools.sh)")
    lines = _zipf_corpus(4000, 2)
    text = "\n".join(lines) + "\n"
    ref = tmp_path / "ref.arpa"
    cmd = [lmplz, "-o", "4", "-S", "100M", "-T", str(tmp_path), "--discount_fallback"]
    if prune:
        cmd += ["--prune", *prune]
    with open(ref, "wb") as fh:
        subprocess.run(cmd, input=text.encode(), stdout=fh, stderr=subprocess.DEVNULL, check=True)
    ours = tmp_path / "ours.arpa"
    build_lm(
        lines, ours, order=4, normalize="none", prune=[int(x) for x in prune] if prune else None
    )
    a, b = read_arpa(ours), read_arpa(ref)
    assert set(a) == set(b)
    for g in a:
        if g != ("<s>",):  # lmplz writes 0, we write -99: never used
            assert a[g][0] == pytest.approx(b[g][0], abs=2e-6), g
            assert a[g][1] == pytest.approx(b[g][1], abs=2e-6), g
