"""Assemble the English LM corpus from unpacked Debian packages.

Usage: python lm/prepare_corpus.py ROOT OUTDIR [--bible PROG] [--holdout 100]

ROOT is a directory into which these .deb files were unpacked with
`dpkg-deb -x` (see lm/recipe.sh): bible-kjv-text + bible-kjv (King James
Bible, public domain), r-cran-janeaustenr (Jane Austen's six novels, public
domain text, MIT packaging), fortunes + fortunes-min (BSD fortune files),
wordnet-base (WordNet 3.0 glosses and examples, WordNet licence), and
libreoffice-help-en-us (LibreOffice's English help pages, MPL-2.0).

Writes OUTDIR/train.txt and OUTDIR/test.txt, one sentence a line, raw text
(`ctcli lm build` normalises), from the first four: the older English
that the speech training text and the held-out voice set are drawn from.
The help pages, present-day English, go to OUTDIR/help-train.txt and
OUTDIR/help-test.txt, so adding them changed neither of those. Every
HOLDOUT-th sentence of each source goes to the test file. Deterministic:
the same packages give byte-identical files.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rdata  # noqa: E402

_SPLIT = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9])")
_WS = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # fortunes' overstrike backspaces etc.


def sentences(paragraph: str) -> list[str]:
    p = _WS.sub(" ", _CONTROL.sub("", paragraph)).strip()
    return [s.strip() for s in _SPLIT.split(p) if s.strip()] if p else []


def paragraphs(lines) -> list[str]:
    out, cur = [], []
    for line in lines:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            out.append(" ".join(cur))
            cur = []
    if cur:
        out.append(" ".join(cur))
    return out


def bible(root: Path, prog: str | None) -> list[str]:
    exe = prog or str(root / "usr/bin/bible")
    data = root / "usr/lib"
    r = subprocess.run(
        [exe, "-p", str(data), "-l0", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True
    )
    out = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s+\d+ (.*)$", line)  # verses are indented; "1 Samuel 1" is a heading
        if m:
            out.extend(sentences(m.group(1)))
    return out


def austen(root: Path) -> list[str]:
    books = rdata.read_lazyload(root / "usr/lib/R/site-library/janeaustenr/data/Rdata")
    out = []
    for name in sorted(books):
        for para in paragraphs(books[name]):
            if para.isupper() or para.lower().startswith("chapter"):
                continue
            out.extend(sentences(para))
    return out


SKIP_FORTUNES = {"art", "ascii-art"}


def fortunes(root: Path) -> list[str]:
    d = root / "usr/share/games/fortunes"
    out = []
    for f in sorted(d.iterdir()):
        if f.suffix or f.is_symlink() or not f.is_file() or f.name in SKIP_FORTUNES:
            continue
        text = f.read_bytes().decode("utf-8", "replace")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            # attribution lines ("-- Author") are not running text
            lines = [ln for ln in entry.splitlines() if not ln.strip().startswith("--")]
            for para in paragraphs(lines):
                out.extend(sentences(para))
    return out


def wordnet(root: Path) -> list[str]:
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (
            (root / f"usr/share/wordnet/data.{pos}").read_text("utf-8", "replace").splitlines()
        ):
            if line.startswith("  ") or " | " not in line:
                continue
            gloss = line.split(" | ", 1)[1]
            for part in gloss.split(";"):
                part = part.strip().strip('"').strip()
                if part:
                    out.append(part)
    return out


class _HelpText(HTMLParser):
    """Paragraphs of running text in one LibreOffice help page: block
    elements end a paragraph; page furniture (header, side bars, footer),
    scripts, code and the hidden platform variants of a phrase (the macOS
    wording beside the default one) are left out."""

    SKIP = {"script", "style", "header", "footer", "aside", "pre", "code", "kbd", "samp", "tt"}
    BLOCK = {"p", "div", "li", "td", "th", "tr", "br", "h1", "h2", "h3", "h4", "h5", "h6", "table"}
    VOID = {"br", "img", "input", "meta", "link", "hr", "wbr", "source", "col", "area", "base"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paras: list[str] = []
        self._cur: list[str] = []
        self._stack: list[bool] = []  # per open element: does it hide its content

    def _end_para(self) -> None:
        if self._cur:
            self.paras.append(" ".join(self._cur))
            self._cur = []

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCK:
            self._end_para()
        if tag in self.VOID:
            return
        self._stack.append(tag in self.SKIP or any(k == "hidden" for k, _ in attrs))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if self._stack:
            self._stack.pop()
        if tag in self.BLOCK:
            self._end_para()

    def handle_data(self, data):
        if not any(self._stack) and data.strip():
            self._cur.append(data.strip())

    def close(self) -> None:
        super().close()
        self._end_para()


_HELP_CODE = re.compile(r"[/\\_{}<>=@#|~`\[\]$%^*+]|\w\(|\w\.\w")  # paths, formulas, names


def libreoffice_help(root: Path) -> list[str]:
    """Sentences of the English help pages: whole sentences of 4-40 words
    ending in . ! or ?, none with path, formula or code characters, none
    mostly in capitals; each distinct sentence once (pages share boilerplate)."""
    pages = sorted((root / "usr/share/libreoffice/help/en-US/text").rglob("*.html"))
    out, seen = [], set()
    for page in pages:
        parser = _HelpText()
        parser.feed(page.read_text("utf-8", "replace"))
        parser.close()
        for para in parser.paras:
            for s in sentences(para):
                if (
                    s in seen
                    or not 4 <= len(s.split()) <= 40
                    or s[-1] not in ".!?"
                    or _HELP_CODE.search(s)
                    or sum(c.isupper() for c in s) > 0.25 * len(s)
                ):
                    continue
                seen.add(s)
                out.append(s)
    return out


def _write_split(sources, train: Path, test: Path, holdout: int) -> tuple[int, int]:
    """Every holdout-th sentence of each source to test, the rest to train."""
    n_train = n_test = 0
    with open(train, "w", encoding="utf-8") as tr, open(test, "w", encoding="utf-8") as te:
        for name, fn in sources:
            sents = fn()
            print(
                f"{name}: {len(sents)} sentences, {sum(len(s.split()) for s in sents)} words",
                file=sys.stderr,
            )
            for i, s in enumerate(sents):
                if i % holdout == holdout - 1:
                    te.write(s + "\n")
                    n_test += 1
                else:
                    tr.write(s + "\n")
                    n_train += 1
    return n_train, n_test


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--bible", help="path of the `bible` program (default ROOT/usr/bin/bible)")
    ap.add_argument("--holdout", type=int, default=100)
    a = ap.parse_args()
    a.outdir.mkdir(parents=True, exist_ok=True)
    n_train, n_test = _write_split(
        (
            ("bible", lambda: bible(a.root, a.bible)),
            ("austen", lambda: austen(a.root)),
            ("fortunes", lambda: fortunes(a.root)),
            ("wordnet", lambda: wordnet(a.root)),
        ),
        a.outdir / "train.txt",
        a.outdir / "test.txt",
        a.holdout,
    )
    print(f"train {n_train} sentences, test {n_test}", file=sys.stderr)
    h_train, h_test = _write_split(
        (("libreoffice-help", lambda: libreoffice_help(a.root)),),
        a.outdir / "help-train.txt",
        a.outdir / "help-test.txt",
        a.holdout,
    )
    print(f"help-train {h_train} sentences, help-test {h_test}", file=sys.stderr)


if __name__ == "__main__":
    main()
