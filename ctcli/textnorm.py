"""English text normalisation for speech: what an acoustic model over
`a-z ' space` should hear and be scored against.

Rules (used for training text, LM corpora and WER scoring alike):
lower case; numbers, ordinals, years, money, percentages and clock times
spelled out; `&` -> "and"; every other character that is not a letter or an
apostrophe inside a word becomes a word break; whitespace collapsed.
"""

from __future__ import annotations

import re
import unicodedata

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _below_1000(n: int) -> list[str]:
    out: list[str] = []
    if n >= 100:
        out += [ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        out.append(TENS[n // 10])
        n %= 10
        if n:
            out.append(ONES[n])
    elif n or not out:
        out.append(ONES[n])
    return out


def number_words(n: int) -> str:
    """Cardinal: 1234 -> 'one thousand two hundred thirty four'."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 1000:
        return " ".join(_below_1000(n))
    out: list[str] = []
    for value, name in SCALES:
        if n >= value:
            out += [number_words(n // value), name]
            n %= value
    if n:
        out += _below_1000(n)
    return " ".join(out)


def year_words(n: int) -> str:
    """1999 -> 'nineteen ninety nine', 2005 -> 'two thousand five', 1900 -> 'nineteen hundred'."""
    if 2000 <= n <= 2009 or n % 1000 == 0:
        return number_words(n)
    hi, lo = divmod(n, 100)
    if lo == 0:
        return number_words(hi) + " hundred"
    return number_words(hi) + " " + ("oh " + ONES[lo] if lo < 10 else number_words(lo))


def ordinal_words(n: int) -> str:
    words = number_words(n).split()
    last = words[-1]
    if last in ORDINAL_WORDS:
        words[-1] = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _digits(s: str) -> str:
    return " ".join(ONES[int(c)] for c in s)


_MONEY = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.I)
_DECIMAL = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER = re.compile(r"\b\d[\d,]*\b")
CURRENCY = {"$": ("dollar", "cent"), "£": ("pound", "penny"), "€": ("euro", "cent")}


def _money(m: re.Match) -> str:
    unit, sub = CURRENCY[m.group(1)]
    whole = int(m.group(2).replace(",", ""))
    out = f"{number_words(whole)} {unit}{'' if whole == 1 else 's'}"
    if m.group(3):
        cents = int(m.group(3).ljust(2, "0"))
        if cents:
            plural = "pence" if sub == "penny" else sub + "s"
            out += f" and {number_words(cents)} {sub if cents == 1 else plural}"
    return f" {out} "


def _plain_number(m: re.Match) -> str:
    s = m.group(0)
    if "," in s:
        if re.fullmatch(r"\d{1,3}(,\d{3})+", s):
            return f" {number_words(int(s.replace(',', '')))} "
        return " " + " ".join(_plain_number(re.match(r"\d+", p)) for p in s.split(",") if p) + " "
    if len(s) > 1 and s.startswith("0"):
        return f" {_digits(s)} "
    n = int(s)
    if 1100 <= n <= 2099 and len(s) == 4:
        return f" {year_words(n)} "
    if len(s) > 15:
        return f" {_digits(s)} "
    return f" {number_words(n)} "


def expand_numbers(text: str) -> str:
    text = _MONEY.sub(_money, text)
    text = _PERCENT.sub(lambda m: f" {_decimal_words(m.group(1))} percent ", text)
    text = _TIME.sub(
        lambda m: (
            f" {number_words(int(m.group(1)))} "
            + (
                "o'clock"
                if m.group(2) == "00"
                else (
                    "oh " + ONES[int(m.group(2))]
                    if m.group(2)[0] == "0"
                    else number_words(int(m.group(2)))
                )
            )
            + " "
        ),
        text,
    )
    text = _ORDINAL.sub(lambda m: f" {ordinal_words(int(m.group(1)))} ", text)
    text = _DECIMAL.sub(lambda m: f" {_decimal_words(m.group(0))} ", text)
    return _NUMBER.sub(_plain_number, text)


def _decimal_words(s: str) -> str:
    whole, _, frac = s.partition(".")
    out = number_words(int(whole))
    return out + (" point " + _digits(frac) if frac else "")


_NON_WORD = re.compile(r"[^a-z' ]+")
_EDGE_APOS = re.compile(r"(^|\s)'+|'+(?=\s|$)")


def normalize_en(text: str) -> str:
    """Free text -> lowercase `a-z '` words separated by single spaces."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("’", "'").replace("‘", "'").replace("&", " and ")
    text = expand_numbers(text).lower()
    text = _NON_WORD.sub(" ", text)
    text = _EDGE_APOS.sub(" ", text)
    return " ".join(text.split())
