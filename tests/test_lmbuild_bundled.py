"""The bundled LMs in lm/ match their manifest and load through KenLM."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

LM_DIR = Path(__file__).resolve().parent.parent / "lm"
MANIFEST = LM_DIR / "MANIFEST.json"
KEYS = {"name", "file", "sha256", "size", "order", "unit", "vocab_size", "unigrams",
        "corpus", "license", "test_perplexity", "description"}  # fmt: skip

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason="lm/MANIFEST.json not built")


def entries():
    return {e["name"]: e for e in json.loads(MANIFEST.read_text())["lms"]}


def test_manifest_matches_files():
    lms = entries()
    assert {"en-4gram", "expr-char"} <= set(lms)
    for e in lms.values():
        assert KEYS <= set(e), e["name"]
        path = LM_DIR / e["file"]
        assert path.stat().st_size == e["size"] < 25 * 2**20  # repo limit per file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == e["sha256"]
    assert lms["en-4gram"]["unit"] == "word" and lms["expr-char"]["unit"] == "char"
    assert lms["expr-char"]["unigrams"] is None


def test_unigram_list():
    e = entries()["en-4gram"]
    words = (LM_DIR / e["unigrams"]).read_text().splitlines()
    assert len(words) == e["vocab_size"] - 3  # without <unk> <s> </s>
    assert words[0] == "the"  # most frequent first
    assert all(w and " " not in w and not w.startswith("<") for w in words)


def test_bundled_models_load_and_score():
    kenlm = pytest.importorskip("kenlm")
    lms = entries()
    t = time.perf_counter()
    en = kenlm.Model(str(LM_DIR / lms["en-4gram"]["file"]))
    assert time.perf_counter() - t < 0.5
    assert en.order == 4
    assert en.score("the lord is my shepherd") > en.score("shepherd my is lord the") + 5
    ex = kenlm.Model(str(LM_DIR / lms["expr-char"]["file"]))
    assert ex.order == lms["expr-char"]["order"]
    assert ex.score(" ".join("(1+2)*3=9")) > ex.score(" ".join("(1+2*3=9)")) + 1


def test_en_char_scores_english_over_scrambles():
    kenlm = pytest.importorskip("kenlm")
    e = entries().get("en-char")
    if e is None:
        pytest.skip("en-char not built")
    lm = kenlm.Model(str(LM_DIR / e["file"]))
    assert lm.order == e["order"] and e["unit"] == "char"

    def toks(s: str) -> str:
        return " ".join("<sp>" if c == " " else c for c in s)

    assert lm.score(toks("And it came to pass.")) > lm.score(toks("Adn ti cmae ot psas.")) + 10
    assert lm.score(toks('"Yes," she said.')) > lm.score(toks('"Yes,"she said .')) + 2
