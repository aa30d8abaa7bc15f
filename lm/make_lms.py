"""Build the bundled LMs and lm/MANIFEST.json (called by lm/recipe.sh).

Usage: python lm/make_lms.py --corpus DIR --work SCRATCH --out lm

DIR holds train.txt and test.txt from lm/prepare_corpus.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ctcli.cli_lm import arpa_to_binary, perplexity  # noqa: E402
from ctcli.lmbuild import build_lm, generate_expressions  # noqa: E402
from ctcli.registry import sha256_file  # noqa: E402

EN_ORDER = 4
EN_PRUNE = [0, 0, 1, 1]  # drop singleton trigrams and 4-grams: ~11 MB binary
EXPR_ORDER = 6  # the kenlm Python module is compiled for order <= 6
EXPR_PRUNE = [0, 0, 0, 1, 1, 1]
EXPR_TRAIN = (50_000, 0)  # expressions, seed
EXPR_TEST = (2_000, 1)
ENC_ORDER = 6  # printed-English character LM (ocr-en)
ENC_PRUNE = [0, 0, 0, 0, 1, 1]

EN_CORPUS = (
    "King James Bible (Debian bible-kjv-text 4.38), Jane Austen's six novels "
    "(r-cran-janeaustenr 1.0.0-1), BSD fortune files (fortunes, fortunes-min "
    "1:1.99.1-7.3; art and ascii-art left out), WordNet 3.0 glosses and examples "
    "(wordnet-base 1:3.0-37); sentence-split by lm/prepare_corpus.py, every "
    "100th sentence held out as the test set; sentences in lm/exclude-en.txt removed"
)
EN_LICENSE = (
    "Public domain (KJV, Austen texts); BSD-style (fortune files as shipped in "
    "Debian main, WordNet 3.0 licence). No GPL text."
)
EXCLUDED = "; sentences in lm/exclude-en.txt removed"
HELP_CORPUS = (
    "; and present-day English: the sentences of LibreOffice's English help pages "
    "(libreoffice-help-en-us 4:7.4.7-1+deb12u14; running text only, no code, paths "
    "or formulas; each distinct sentence once; every 100th held out as help-test.txt)"
)
HELP_LICENSE = "; MPL-2.0 (LibreOffice help pages)."


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument(
        "--only", nargs="*", default=None, help="rebuild only these LMs (keep the others' entries)"
    )
    a = ap.parse_args()
    work, out = a.work, a.out
    work.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"lms": []}

    corpus = a.corpus
    built = {}
    wanted = set(a.only) if a.only else {"en-4gram", "expr-char", "en-char"}
    if "en-4gram" in wanted:
        built["en-4gram"] = build_en(corpus, work, out)
    if "expr-char" in wanted:
        built["expr-char"] = build_expr(work, out)
    if "en-char" in wanted:
        built["en-char"] = build_en_char(corpus, work, out)
    previous = {e["name"]: e for e in old.get("lms", [])}
    order = ["en-4gram", "expr-char", "en-char"]
    manifest = {
        "comment": "Bundled n-gram LMs; rebuilt by `make lm` (lm/recipe.sh). See lm/README.md.",
        "lms": [built.get(n) or previous[n] for n in order if n in built or n in previous],
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    before = {e["name"]: e.get("sha256") for e in old.get("lms", [])}
    for e in manifest["lms"]:
        prev = before.get(e["name"])
        verdict = "new" if prev is None else ("bit-identical" if prev == e["sha256"] else "CHANGED")
        print(
            f"{e['name']}: {e['file']} {e['size']} bytes sha256 {e['sha256'][:16]}… "
            f"ppl {e['test_perplexity']} [{verdict} vs previous manifest]",
            file=sys.stderr,
        )


def _lines(*paths: Path):
    for p in paths:
        with open(p, encoding="utf-8") as fh:
            yield from fh


def build_en(corpus: Path, work: Path, out: Path) -> dict:
    """Word 4-gram for the English acoustic model: the older English of
    train.txt and the present-day English of help-train.txt together."""
    arpa = work / "en-4gram.arpa"
    t = time.perf_counter()
    st = build_lm(
        _lines(corpus / "train.txt", corpus / "help-train.txt"),
        arpa,
        order=EN_ORDER,
        unit="word",
        normalize="en",
        prune=EN_PRUNE,
        exclude=HERE / "exclude-en.txt",
        unigrams=out / "en-4gram.unigrams.txt",
    )
    print(
        f"en-4gram: {st.tokens} tokens, n-grams {st.ngrams}, {time.perf_counter() - t:.1f} s",
        file=sys.stderr,
    )
    binf = out / "en-4gram.bin"
    arpa_to_binary(arpa, binf, quantize=8, trie=True)
    with open(corpus / "test.txt", encoding="utf-8") as fh:
        en_ppl = perplexity(binf, fh, "word", "en")
    with open(corpus / "help-test.txt", encoding="utf-8") as fh:
        help_ppl = perplexity(binf, fh, "word", "en")
    print(f"en-4gram: test perplexity {en_ppl}, help-test {help_ppl}", file=sys.stderr)
    en = {
        "name": "en-4gram", "file": binf.name, "sha256": sha256_file(binf), "size": binf.stat().st_size,
        "order": EN_ORDER, "unit": "word", "vocab_size": st.vocab_size,
        "unigrams": "en-4gram.unigrams.txt",
        "corpus": EN_CORPUS.replace(EXCLUDED, "") + HELP_CORPUS + EXCLUDED,
        "license": EN_LICENSE.replace(". No GPL text.", HELP_LICENSE + " No GPL text."),
        "test_perplexity": round(en_ppl["perplexity"], 2),
        "help_test_perplexity": round(help_ppl["perplexity"], 2),
        "description": (
            "English word 4-gram, interpolated modified Kneser-Ney (ctcli lm build), "
            f"pruned {','.join(map(str, EN_PRUNE))}, KenLM trie binary with 8-bit quantisation; "
            "text normalised to lowercase a-z and apostrophe (the English acoustic model's alphabet)"
        ),
        "format": "kenlm-binary", "normalize": "en", "prune": EN_PRUNE,
        "ngrams": st.ngrams, "train_sentences": st.sentences, "train_tokens": st.tokens,
        "test_sentences": en_ppl["sentences"], "test_tokens": en_ppl["tokens"], "test_oov": en_ppl["oov"],
        "help_test_sentences": help_ppl["sentences"], "help_test_tokens": help_ppl["tokens"],
        "help_test_oov": help_ppl["oov"],
    }  # fmt: skip
    return en


def build_expr(work: Path, out: Path) -> dict:
    """Character 6-gram over 'EXPR=RESULT' strings for the captcha model."""
    train = work / "expr-train.txt"
    test = work / "expr-test.txt"
    train.write_text("".join(s + "\n" for s in generate_expressions(*EXPR_TRAIN)), encoding="utf-8")
    test.write_text("".join(s + "\n" for s in generate_expressions(*EXPR_TEST)), encoding="utf-8")
    ef = out / "expr-char.arpa"
    st2 = build_lm(train, ef, order=EXPR_ORDER, unit="char", normalize="none", prune=EXPR_PRUNE)
    with open(test, encoding="utf-8") as fh:
        ex_ppl = perplexity(ef, fh, "char", "none")
    print(f"expr-char: n-grams {st2.ngrams}, test perplexity {ex_ppl}", file=sys.stderr)
    ex = {
        "name": "expr-char", "file": ef.name, "sha256": sha256_file(ef), "size": ef.stat().st_size,
        "order": EXPR_ORDER, "unit": "char", "vocab_size": st2.vocab_size, "unigrams": None,
        "corpus": (
            f"{EXPR_TRAIN[0]} random expressions 'EXPR=RESULT' from "
            f"ctcli.lmbuild.generate_expressions(seed={EXPR_TRAIN[1]}): the captcha templates "
            "{d}{o}{d}{o}{d}, ({d}{o}{d}){o}{d}, {d}{o}({d}{o}{d}) and longer variants "
            "(multi-digit numbers, up to 4 operators, nested parentheses); test set: "
            f"{EXPR_TEST[0]} expressions with seed {EXPR_TEST[1]}"
        ),
        "license": "MIT (generated text)",
        "test_perplexity": round(ex_ppl["perplexity"], 3),
        "description": (
            "Character 6-gram for the arithmetic-expression OCR model: one token per "
            "character of 0123456789+-*()=, interpolated modified Kneser-Ney, ARPA"
        ),
        "format": "arpa", "normalize": "none", "prune": EXPR_PRUNE, "ngrams": st2.ngrams,
        "alphabet": "0123456789+-*()=", "space_token": "<sp>",
    }  # fmt: skip
    return ex


def build_en_char(corpus: Path, work: Path, out: Path) -> dict:
    """Character 6-gram over printed English (printable ASCII, case and
    punctuation kept) for the printed-line OCR model. Lines are folded and
    filtered exactly like the OCR generator's training text (curly quotes to
    straight ones, printable ASCII only)."""
    from ctcli.synth.textline import load_text

    train, test = work / "en-char-train.txt", work / "en-char-test.txt"
    for src, dst in ((corpus / "train.txt", train), (corpus / "test.txt", test)):
        dst.write_text("".join(s + "\n" for s in load_text(src, None)), encoding="utf-8")
    arpa = work / "en-char.arpa"
    st = build_lm(train, arpa, order=ENC_ORDER, unit="char", normalize="none", prune=ENC_PRUNE)
    binf = out / "en-char.bin"
    arpa_to_binary(arpa, binf, quantize=8, trie=True)
    with open(test, encoding="utf-8") as fh:
        ppl = perplexity(binf, fh, "char", "none")
    print(f"en-char: n-grams {st.ngrams}, test perplexity {ppl}", file=sys.stderr)
    return {
        "name": "en-char", "file": binf.name, "sha256": sha256_file(binf), "size": binf.stat().st_size,
        "order": ENC_ORDER, "unit": "char", "vocab_size": st.vocab_size, "unigrams": None,
        "corpus": EN_CORPUS.replace(EXCLUDED, "")
        + "; curly quotes folded to ASCII, lines with other non-ASCII characters dropped",
        "license": EN_LICENSE,
        "test_perplexity": round(ppl["perplexity"], 3),
        "description": (
            "Character 6-gram for the printed-English OCR model: one token per printable "
            "ASCII character, '<sp>' for space, case and punctuation kept, interpolated "
            f"modified Kneser-Ney, pruned {','.join(map(str, ENC_PRUNE))}, KenLM trie binary "
            "with 8-bit quantisation"
        ),
        "format": "kenlm-binary", "normalize": "none", "prune": ENC_PRUNE, "ngrams": st.ngrams,
        "train_sentences": st.sentences, "train_tokens": st.tokens,
        "test_sentences": ppl["sentences"], "test_tokens": ppl["tokens"], "space_token": "<sp>",
    }  # fmt: skip


if __name__ == "__main__":
    main()
