"""Edit distance, CER/WER, corpus scorer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctcli.metrics import Scorer, align, cer, edit_distance, wer


def test_edit_distance_known():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("abc", "abc") == 0
    assert edit_distance(["a", "bb"], ["a", "cc", "bb"]) == 1


def test_cer_wer():
    assert cer("abcd", "abxd") == 0.25
    assert cer("", "") == 0.0 and cer("", "a") == 1.0
    assert wer("the cat sat", "the cat sat") == 0.0
    assert abs(wer("the cat sat", "the bat sat down") - 2 / 3) < 1e-12


def test_scorer_and_confusions():
    s = Scorer()
    s.add("1+2=3", "1*2=3")
    s.add("4-5=-1", "4-5=-1")
    s.add("7=7", "7")
    assert s.n == 3 and s.exact == 1
    assert abs(s.cer - 3 / 14) < 1e-12
    conf = dict(((r, h), c) for r, h, c in s.top_confusions())
    assert conf[("+", "*")] == 1
    assert conf[("=", "")] == 1 and conf[("7", "")] == 1


text = st.text(alphabet="ab+-", max_size=8)


@settings(max_examples=200, deadline=None)
@given(text, text, text)
def test_metric_properties(a, b, c):
    d = edit_distance(a, b)
    assert d == edit_distance(b, a)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert edit_distance(a, c) <= d + edit_distance(b, c)
    pairs = align(a, b)
    assert "".join(r for r, _ in pairs if r) == a and "".join(h for _, h in pairs if h) == b
    assert sum(r != h for r, h in pairs) == d
