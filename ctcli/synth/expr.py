"""Arithmetic-expression captchas, as in the Baidu/Meizu arithmetic contest.

Text: an expression over digits and ``+ - * ( )`` followed by ``=`` and its
correct (possibly negative) integer result, e.g. ``(3-7)*9=-36``.
Image: drawn by the ``captcha`` package's ``ImageCaptcha`` with its default
font and font sizes, height 60-80 px, width 160-260 px.

``captcha`` draws its randomness from the ``secrets`` module, which cannot be
seeded. To make every sample reproducible from ``(seed, index)`` we swap the
module's ``secrets`` reference for a seeded stand-in while one image is drawn
(single-threaded; restored afterwards).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ctcli.exprcheck import evaluate_expression

ALPHABET = "0123456789+-*()="  # model labels, blank is index 0 before these
OPS = "+-*"
# The contest's three templates, single digits (60% of samples). The other 40%
# are "long variants": a random expression tree of 1-4 operators, numbers of
# 1 digit (or, in 70% of those samples, half of the numbers 2-3 digits),
# each inner sub-expression wrapped in parentheses with p = 0.45 (so nesting
# happens). Texts longer than MAX_TEXT_LEN are redrawn: captcha squeezes every
# text into the image width, and longer ones become unreadable at 160-260 px.
BASE_TEMPLATES = ("{d}{o}{d}{o}{d}", "({d}{o}{d}){o}{d}", "{d}{o}({d}{o}{d})")
MAX_TEXT_LEN = 18  # characters, '=' and result included
HEIGHTS = (60, 80)  # px, inclusive range
WIDTHS = (160, 260)  # px, inclusive range
P_BASE = 0.6  # share of samples from the contest templates


class _SeededSecrets:
    """The subset of the ``secrets`` API that ``captcha.image`` calls."""

    def __init__(self, rng: random.Random):
        self._rng = rng

    def randbelow(self, n: int) -> int:
        return self._rng.randrange(n)

    def randbits(self, k: int) -> int:
        return self._rng.getrandbits(k)

    def choice(self, seq):
        return self._rng.choice(seq)


@contextlib.contextmanager
def _seeded_captcha(rng: random.Random):
    import captcha.image as ci

    saved = ci.secrets
    ci.secrets = _SeededSecrets(rng)
    try:
        yield ci
    finally:
        ci.secrets = saved


def _number(rng: random.Random, multi: bool) -> str:
    if not multi or rng.random() < 0.5:
        return str(rng.randrange(10))
    return str(rng.randrange(10, 100 if rng.random() < 0.9 else 1000))


def _tree(rng: random.Random, n_ops: int, multi: bool, top: bool) -> str:
    if n_ops == 0:
        return _number(rng, multi)
    k = rng.randrange(n_ops)
    left = _tree(rng, k, multi, False)
    right = _tree(rng, n_ops - 1 - k, multi, False)
    s = f"{left}{rng.choice(OPS)}{right}"
    if not top and rng.random() < 0.45:
        s = f"({s})"
    return s


def random_expression(rng: random.Random, p_base: float = P_BASE) -> str:
    """One expression text with its result, e.g. ``'(3-7)*9=-36'``."""
    while True:
        if rng.random() < p_base:
            tpl = rng.choice(BASE_TEMPLATES)
            expr = tpl.format(d="{d}", o="{o}")
            out = []
            for part in expr.split("{"):
                if part.startswith("d}"):
                    out.append(str(rng.randrange(10)) + part[2:])
                elif part.startswith("o}"):
                    out.append(rng.choice(OPS) + part[2:])
                else:
                    out.append(part)
            expr = "".join(out)
        else:
            n_ops = rng.randint(1, 4)
            expr = _tree(rng, n_ops, multi=rng.random() < 0.7, top=True)
        text = f"{expr}={evaluate_expression(expr)}"
        if len(text) <= MAX_TEXT_LEN:
            return text


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8 RGB, as drawn
    text: str


class ExprCaptchaGenerator:
    """Deterministic stream of captcha samples: sample i depends only on (seed, i)."""

    alphabet = ALPHABET
    p_base = P_BASE  # share of contest-template texts

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._captcha = None  # one ImageCaptcha (fonts loaded once); size set per sample

    def _captcha_of_size(self, w: int, h: int):
        from captcha.image import ImageCaptcha

        if self._captcha is None:
            self._captcha = ImageCaptcha(width=w, height=h)
        self._captcha._width, self._captcha._height = w, h  # plain attributes in captcha 0.5-0.7
        return self._captcha

    def sample(self, index: int) -> Sample:
        rng = random.Random(f"expr:{self.seed}:{index}")  # str seeds hash with SHA-512: stable
        text = random_expression(rng, self.p_base)
        w = rng.randint(*WIDTHS)
        h = rng.randint(*HEIGHTS)
        gen = self._captcha_of_size(w, h)
        with _seeded_captcha(rng):
            im = gen.generate_image(text)
        return Sample(np.asarray(im.convert("RGB")), text)

    def __iter__(self) -> Iterator[Sample]:
        i = 0
        while True:
            yield self.sample(i)
            i += 1


class ContestCaptchaGenerator(ExprCaptchaGenerator):
    """Only the contest's three templates (the setting of its 99.99% anchor)."""

    p_base = 1.0
