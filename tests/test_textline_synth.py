"""The printed-line generator: determinism, labels, held-out splits."""

from __future__ import annotations

import numpy as np
import pytest

from ctcli.synth import textline


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("text") / "en.txt"
    lines = [f'Line {i}: the quick brown fox, "quoted" -- isn\'t it? ({i * 7})' for i in range(200)]
    p.write_text("\n".join(lines) + "\nnon-ascii café line\n")
    return p


needs_fonts = pytest.mark.skipif(not textline.font_split(False), reason="no fonts installed")
# with only a few fonts installed (a dependency's), the held-out split can be empty
needs_both_splits = pytest.mark.skipif(
    not (textline.font_split(False) and textline.font_split(True)),
    reason="training and held-out fonts not installed (make fonts)",
)


def test_text_split_is_disjoint_and_stable(corpus):
    train = set(textline.load_text(corpus, "train"))
    test = set(textline.load_text(corpus, "test"))
    assert train and test and not (train & test)
    assert all(textline.text_split(s) == "test" for s in test)
    assert not any("café" in s for s in train | test)


def test_font_split_is_disjoint():
    assert not set(textline.font_split(True)) & set(textline.font_split(False))


@needs_fonts
def test_samples_deterministic_and_labelled(corpus):
    g = textline.TextLineGenerator(3, corpus=corpus)
    a, b = g.sample(5), g.sample(5)
    assert a.text == b.text and np.array_equal(a.image, b.image)
    for i in range(15):
        s = g.sample(i)
        assert s.image.ndim == 3 and s.image.dtype == np.uint8 and s.image.shape[0] >= 16
        assert 0 < len(s.text) <= textline.MAX_CHARS
        assert set(s.text) <= set(textline.ALPHABET)


@needs_both_splits
def test_held_out_generator_uses_held_out_fonts_and_text(corpus):
    g = textline.TextLineGenerator(1, held_out=True, corpus=corpus, p_synthetic=0.0)
    assert set(g.fonts) == set(textline.font_split(True))
    test_lines = set(textline.load_text(corpus, "test"))
    for i in range(5):
        t = g.sample(i).text
        assert any(t in line for line in test_lines)


def test_corpus_folder_uses_train_and_test_files(tmp_path):
    (tmp_path / "train.txt").write_text("alpha beta gamma\nnon-ascii café\n")
    (tmp_path / "test.txt").write_text("delta epsilon zeta\n")
    assert textline.corpus_lines(tmp_path, held_out=False) == ["alpha beta gamma"]
    assert textline.corpus_lines(tmp_path, held_out=True) == ["delta epsilon zeta"]
    assert textline.corpus_lines(tmp_path / "missing", held_out=True) == []


@needs_both_splits
def test_version_2_binarisation_keeps_thin_strokes(corpus):
    """Versions 1 and 2 draw the same texts and images except for the
    binarised "scan" look, where version 2 keeps thin strokes that version 1
    thresholded away."""
    g1 = textline.TextLineGenerator(11, corpus=corpus, version=1)
    g2 = textline.TextLineGenerator(11, corpus=corpus, version=2)
    differ = []
    for i in range(60):
        a, b = g1.sample(i), g2.sample(i)
        assert a.text == b.text and a.image.shape == b.image.shape
        if not np.array_equal(a.image, b.image):
            differ.append((int((a.image < 128).sum()), int((b.image < 128).sum())))
    assert differ  # some of the 60 are binarised (p = 0.12)
    assert all(ink2 >= ink1 for ink1, ink2 in differ)
    with pytest.raises(ValueError, match="version"):
        textline.TextLineGenerator(1, corpus=corpus, version=9)


def test_spec_names():
    from ctcli.synth import get_generator, spec_family, split_spec

    assert split_spec("textline@1") == ("textline", 1) and split_spec("expr") == ("expr", None)
    assert spec_family("textline-heldout@2") == "textline" and spec_family("expr") == "expr"
    for bad in ("textline@9", "textline@x", "expr@1", "nonsense"):
        with pytest.raises(ValueError):
            get_generator(bad)


@needs_both_splits
def test_spec_versions():
    from ctcli.synth import get_generator

    assert get_generator("textline")(0).version == textline.GEN_VERSION
    assert get_generator("textline-heldout@1")(0).version == 1
    assert get_generator("textline-heldout@1")(0).held_out


@needs_both_splits
def test_version_3_thins_training_lines_only(corpus):
    """Version 3 thins the strokes of some training lines (less ink, same
    text); held-out lines are drawn exactly as in version 2."""
    kw = dict(corpus=corpus)
    thinner = 0
    for i in range(24):
        a = textline.TextLineGenerator(5, version=2, **kw).sample(i)
        b = textline.TextLineGenerator(5, version=3, **kw).sample(i)
        assert a.text == b.text
        thinner += not np.array_equal(a.image, b.image)
        h2 = textline.TextLineGenerator(5, held_out=True, version=2, **kw).sample(i)
        h3 = textline.TextLineGenerator(5, held_out=True, version=3, **kw).sample(i)
        assert h2.text == h3.text and np.array_equal(h2.image, h3.image)
    assert thinner > 0
    m = np.zeros((20, 60), np.float32)
    m[5:15, 10:50] = 1.0  # a 10 px thick bar
    m[5:15, 55] = 1.0  # a 1 px stroke
    t = textline._thin(m, 2)
    assert t[5:15, 10:50].sum() < m[5:15, 10:50].sum() and t[8:12, 20:40].min() > 0.95
    assert 0.25 < t[10, 55] < 1.0  # a hairline is left as a faint trace
