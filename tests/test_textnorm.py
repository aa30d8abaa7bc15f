from hypothesis import given
from hypothesis import strategies as st

from ctcli.textnorm import normalize_en, number_words, ordinal_words, year_words


def test_cardinals():
    assert number_words(0) == "zero"
    assert number_words(15) == "fifteen"
    assert number_words(40) == "forty"
    assert number_words(101) == "one hundred one"
    assert number_words(1_000_001) == "one million one"
    assert number_words(-12) == "minus twelve"


def test_years_and_ordinals():
    assert year_words(1999) == "nineteen ninety nine"
    assert year_words(1905) == "nineteen oh five"
    assert year_words(2005) == "two thousand five"
    assert year_words(1900) == "nineteen hundred"
    assert (
        ordinal_words(1) == "first"
        and ordinal_words(22) == "twenty second"
        and ordinal_words(30) == "thirtieth"
    )


def test_sentences():
    assert (
        normalize_en("He paid $3.50 at 10:05, in 1999!")
        == "he paid three dollars and fifty cents at ten oh five in nineteen ninety nine"
    )
    assert (
        normalize_en("45% of 1,234 & the 3rd")
        == "forty five percent of one thousand two hundred thirty four and the third"
    )
    assert normalize_en("'Tis O'Brien's -- “quoted” café") == "tis o'brien's quoted cafe"


@given(st.text(max_size=200))
def test_output_alphabet(s):
    out = normalize_en(s)
    assert set(out) <= set("abcdefghijklmnopqrstuvwxyz' ")
    assert "  " not in out and out == out.strip()


@given(st.integers(-(10**15), 10**15))
def test_numbers_are_words(n):
    assert set(number_words(n)) <= set("abcdefghijklmnopqrstuvwxyz ")
