"""KenLM fusion on hand-built log-prob matrices with tiny ARPA files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("kenlm")

from ctcli._beam_ref import RefWordLM, prefix_beam_search  # noqa: E402
from ctcli.decoder import PruningOptions, build_decoder  # noqa: E402
from ctcli.errors import DecoderInputError, LMLoadError  # noqa: E402
from ctcli.lm import KenLM, load_unigrams, read_arpa_unigrams  # noqa: E402

DATA = Path(__file__).parent / "data" / "decoder"
WORD_ARPA = DATA / "tiny-word.arpa"
CHAR_ARPA = DATA / "tiny-char.arpa"
LABELS = ["", " ", "a", "c", "e", "h", "p", "s", "t"]
EXH = {f: getattr(PruningOptions.exhaustive(), f) for f in PruningOptions.__dataclass_fields__}


def frames(spec, labels=LABELS):
    """spec: list of {label: prob}; the rest of each row's mass goes to blank."""
    V = len(labels)
    rows = []
    for d in spec:
        p = np.full(V, 1e-4)
        for k, v in d.items():
            p[labels.index(k)] = v
        p[0] = max(1e-4, 1.0 - sum(d.values()))
        rows.append(p / p.sum())
    return np.log(np.array(rows)).astype(np.float32)


def word_frames(text, ambiguous=None, labels=LABELS):
    spec = []
    for i, ch in enumerate(text):
        spec.append(ambiguous if (ambiguous and i == len(text) - 1) else {ch: 0.9})
        spec.append({})  # a blank frame between labels
    return frames(spec, labels)


# "the ca?" where the last letter is p (0.5) or t (0.4)
AMBIG = word_frames("the cat", ambiguous={"p": 0.5, "t": 0.4})


def test_lm_flips_result_and_not_at_alpha_zero():
    assert build_decoder(LABELS).decode(AMBIG).text == "the cap"
    assert build_decoder(LABELS, lm=WORD_ARPA, alpha=0.0, beta=0.0).decode(AMBIG).text == "the cap"
    r = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, beta=0.0, n_best=2).decode(AMBIG)
    assert r.text == "the cat"
    assert [h.text for h in r.nbest] == ["the cat", "the cap"]
    for h in r.nbest:
        assert h.score == pytest.approx(h.acoustic_score + h.lm_score)
    assert r.nbest[0].acoustic_score < r.nbest[1].acoustic_score  # the LM paid for it
    assert [w.text for w in r.words] == ["the", "cat"]


def test_lm_flip_inside_an_utterance_uses_context():
    lp = np.concatenate([AMBIG, word_frames(" sat")])
    r = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, beta=0.5).decode(lp)
    assert r.text == "the cat sat"
    assert [(w.text, w.start < w.end) for w in r.words] == [
        ("the", True), ("cat", True), ("sat", True)
    ]  # fmt: skip
    assert r.words[1].conf < r.words[0].conf  # the ambiguous letter lowers "cat"


def test_open_vocabulary_keeps_confident_oov_word():
    lp = word_frames("the hast")  # "hast" is not in the LM; dropping "s" costs ~2.2 nats
    r = build_decoder(
        LABELS, lm=WORD_ARPA, alpha=0.5, beta=1.0, oov_score=-3.0, oov_char_score=0.0
    ).decode(lp)
    assert r.text == "the hast"
    # the OOV cost is tunable: a large one pushes towards in-vocabulary words
    r = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, beta=1.0, oov_score=-20.0).decode(lp)
    assert r.text == "the hat"
    # ... and so does a cost per letter of the made-up word
    r = build_decoder(
        LABELS, lm=WORD_ARPA, alpha=0.5, beta=1.0, oov_score=-3.0, oov_char_score=-2.0
    ).decode(lp)
    assert r.text == "the hat"


@pytest.mark.parametrize("seed", range(4))
def test_word_lm_compiled_matches_reference(seed):
    rng = np.random.default_rng(seed)
    T, V = 18, len(LABELS)
    x = rng.normal(size=(T, V)) * 2.5
    x[:, 0] += 1.0
    lp = (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float32)
    alpha, beta, oov, oovc = 0.7, 0.4, -6.0, -0.5
    dec = build_decoder(
        LABELS, lm=WORD_ARPA, alpha=alpha, beta=beta, beam_width=6, n_best=6, oov_score=oov,
        oov_char_score=oovc, **EXH,
    )  # fmt: skip
    lm = KenLM(WORD_ARPA)
    ref = prefix_beam_search(
        lp.astype(np.float64), LABELS, beam_width=6, alpha=alpha, beta=beta,
        word_lm=RefWordLM(lm, dec.vocab, oov, oovc),
    )  # fmt: skip
    r = dec.decode(lp)
    assert [h.text for h in r.nbest] == [t for t, _ in ref]
    assert [h.score for h in r.nbest] == pytest.approx([s for _, s in ref], abs=1e-3)


def test_char_lm_flips_expression():
    labels = ["", "1", "7", "+"]
    spec = [{"7": 0.5, "1": 0.45}, {}, {"+": 0.9}, {}, {"1": 0.9}]
    lp = frames(spec, labels)
    assert build_decoder(labels).decode(lp).text == "7+1"
    dec = build_decoder(labels, lm=CHAR_ARPA, lm_unit="char", alpha=0.0)
    assert dec.decode(lp).text == "7+1"
    dec = build_decoder(labels, lm=CHAR_ARPA, lm_unit="char", alpha=0.5)
    assert dec.decode(lp).text == "1+1"
    s = dec.stream()
    s.feed(lp[:2])
    s.feed(lp[2:])
    assert s.finish() == dec.decode(lp)


def test_unigrams_sources_agree(tmp_path):
    words = read_arpa_unigrams(WORD_ARPA)
    assert words == ["the", "cat", "cap", "sat", "hat"]
    f = tmp_path / "u.txt"
    f.write_text("\n".join(words) + "\n")
    assert load_unigrams(f) == words
    a = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, unigrams=None).decode(AMBIG)
    b = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, unigrams=f).decode(AMBIG)
    c = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, unigrams=words).decode(AMBIG)
    assert a == b == c


def test_lm_load_errors(tmp_path):
    with pytest.raises(LMLoadError):
        build_decoder(LABELS, lm=tmp_path / "missing.arpa")
    bad = tmp_path / "bad.arpa"
    bad.write_text("this is not an ARPA file\n")
    with pytest.raises(LMLoadError):
        build_decoder(LABELS, lm=bad)
    with pytest.raises(LMLoadError):
        build_decoder(LABELS, lm=WORD_ARPA, unigrams=tmp_path / "nope.txt")
    with pytest.raises(DecoderInputError):
        build_decoder(LABELS, lm=WORD_ARPA).decode(np.zeros((2, 3), np.float32) - 1.1)


def test_lm_batch_in_processes():
    dec = build_decoder(LABELS, lm=WORD_ARPA, alpha=0.5, beta=0.5)
    arrs = [AMBIG, word_frames("the hat"), np.concatenate([AMBIG, word_frames(" sat")])]
    assert [r.text for r in dec.decode_batch(arrs, jobs=2)] == ["the cat", "the hat", "the cat sat"]


def test_no_lm_needs_neither_kenlm_nor_eager_numba():
    code = (
        "import sys; sys.modules['kenlm'] = None\n"
        "import ctcli.decoder as d\n"
        "assert 'numba' not in sys.modules, 'numba imported eagerly'\n"
        "import numpy as np\n"
        "lp = np.log(np.array([[0.1, 0.8, 0.1]], np.float32))\n"
        "assert d.greedy_decode(lp, ['', 'a', 'b']).text == 'a'\n"
        "assert 'numba' not in sys.modules\n"
        "assert d.build_decoder(['', 'a', 'b']).decode(lp).text == 'a'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_char_lm_space_token_matches_lmbuild():
    from ctcli.lm import CHAR_LM_SPACE

    lmbuild = pytest.importorskip("ctcli.lmbuild")
    assert lmbuild.SPACE_TOKEN == CHAR_LM_SPACE
    dec = build_decoder(["", " ", "1", "+"], lm=CHAR_ARPA, lm_unit="char")
    assert dec.tokens[1] == CHAR_LM_SPACE


BUNDLED = Path(__file__).resolve().parent.parent / "lm" / "en-4gram.bin"


@pytest.mark.skipif(not BUNDLED.exists(), reason="bundled LM not present")
def test_bundled_binary_lm_finds_its_unigrams():
    labels = ["", " ", *"abcdefghijklmnopqrstuvwxyz", "'"]
    dec = build_decoder(labels, lm=BUNDLED)  # unigrams from en-4gram.unigrams.txt
    assert len(dec.vocab) > 1000
    lp = word_frames("the cat", ambiguous={"p": 0.5, "t": 0.4}, labels=labels)
    assert build_decoder(labels).decode(lp).text == "the cap"
    assert dec.decode(lp).text == "the cat"


def test_lm_sentence_false_drops_the_sentence_boundaries(tmp_path):
    """A char LM trained on whole sentences thinks every text ends in '.':
    a printed line cut mid-sentence that ends in ',' would be 'corrected'.
    With lm_sentence=False the search starts from no context and scores no
    </s>, so the acoustically better ',' stays."""
    from ctcli.lmbuild import build_lm

    arpa = tmp_path / "punct.arpa"
    build_lm(
        ["b a, b.", "b, b a."] * 5, arpa, order=3, unit="char", normalize="none"
    )  # ' a': ',' or '.'
    labels = ["", " ", "a", "b", ",", "."]
    lp = word_frames("b a,", ambiguous={",": 0.5, ".": 0.4}, labels=labels)
    kw = dict(lm=arpa, alpha=1.0, beta=0.0, lm_unit="char")
    assert build_decoder(labels).decode(lp).text == "b a,"
    assert build_decoder(labels, **kw).decode(lp).text == "b a."  # </s> after ',' is unlikely
    r = build_decoder(labels, lm_sentence=False, **kw).decode(lp)
    assert r.text == "b a,"
    assert KenLM(arpa, sentence=False).end_score(0) != KenLM(arpa).end_score(0)  # starts differ
