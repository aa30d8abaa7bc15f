"""Printed English text lines for the `ocr-en` model: ctcli's own renderer.

Text comes from freely licensed English corpora (one line per sentence) plus
synthetic strings that exercise digits and punctuation; fonts are every
Latin text font installed from Debian's font packages (serif, sans, mono,
condensed, italic, bold). A held-out set of font families and held-out text
(the LM corpus's test.txt, or a hash slice of a single corpus file) are never
used for training, so evaluation measures generalisation to new fonts and
new text.

Augmentation follows what scans, photos and screenshots do: letter spacing,
coloured ink, paper / gradient / noise / blob backgrounds, underlines, clipped
neighbouring lines, rotation, perspective and sine warps, blur, noise, JPEG
artefacts, binarisation, low contrast. Sample i depends only on (seed, i).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALPHABET = "".join(chr(c) for c in range(32, 127))  # printable ASCII, space included
FONT_DIRS = ("/usr/share/fonts", "/usr/share/texmf/fonts", "/usr/local/share/fonts")
FONT_EXTS = (".ttf", ".otf")
# Not text fonts (symbols, math, icons) or missing much of ASCII.
EXCLUDE = (
    "symbol",
    "dingbat",
    "d050000l",
    "math",
    "stixsize",
    "stixintegrals",
    "stixvariants",
    "stixnonunicode",
    "awesome",
    "glyphicons",
    "mathjax",
    "stixgeneral",
    "droidsansfallback",
    "stix-word",
)
# Families kept out of training entirely: the "held-out font set" for eval.
HELD_OUT_FONTS = (
    "texgyrepagella",
    "caladea",
    "lato-",
    "hack-",
    "gentium",
    "comicneue",
    "courierprime",
)
HELD_OUT_TEXT_PERCENT = 5  # lines whose hash falls here are evaluation text
MAX_CHARS = 64  # longest rendered line
# Generator versions (a spec may name one: `textline@1`). Shards made with a
# version stay reproducible with it.
#   1: the binarised "scan" look thresholded the anti-aliased glyph mask at an
#      absolute 0.35-0.6. Thin or small glyphs never reach that coverage, so
#      their strokes broke into dots or vanished (of 800 held-out lines, 5
#      lost over 40% of their ink, 3 over 70%: labels with next to no text).
#   2: the threshold is relative to the line's own stroke coverage (its 99th
#      percentile), so every stroke keeps its core, as in a real 300 dpi scan.
#   3: a quarter of the training lines get thinner, fainter strokes
#      (`_thin`): the hairline, thin and light weights that few training
#      fonts have. Held-out lines are drawn as in version 2 (their fonts
#      bring their own weights), so the held-out test set is unchanged.
GEN_VERSION = 3
VERSIONS = (1, 2, 3)
P_THIN = 0.25  # version 3: share of lines drawn with thinned strokes


def _is_text_font(path: str) -> bool:
    low = path.lower()
    return low.endswith(FONT_EXTS) and not any(x in low for x in EXCLUDE)


@functools.lru_cache(maxsize=1)
def all_fonts() -> tuple[str, ...]:
    found = []
    for d in FONT_DIRS:
        for root, _, files in os.walk(d):
            found += [os.path.join(root, f) for f in files if _is_text_font(os.path.join(root, f))]
    return tuple(sorted(found))


def font_split(held_out: bool) -> list[str]:
    return [
        f
        for f in all_fonts()
        if any(h in os.path.basename(f).lower() for h in HELD_OUT_FONTS) == held_out
    ]


def text_split(line: str) -> str:
    """'train' or 'test' by a stable hash of the line."""
    h = int(hashlib.sha1(line.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if h < HELD_OUT_TEXT_PERCENT else "train"


def load_text(path: str | os.PathLike, split: str | None) -> list[str]:
    """Lines of printable ASCII from a corpus file (curly quotes folded);
    only those of ``split`` ('train'/'test' by hash) unless it is None."""
    fold = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'", "—": "-", "–": "-", "…": "..."})
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = " ".join(line.translate(fold).split())
            if (
                len(s) >= 3
                and all(c in ALPHABET for c in s)
                and (split is None or text_split(s) == split)
            ):
                out.append(s)
    return out


def synthetic_text(rng: random.Random) -> str:
    """Strings real text rarely has: numbers, codes, prices, emails, punctuation runs."""
    k = rng.random()
    if k < 0.2:
        return f"{rng.randint(1, 9999)} {rng.choice(['kg', 'km', 'mm', 'ml', '%', 'USD', 'ft'])}, ({rng.randint(1, 99)}.{rng.randint(0, 99):02d})"
    if k < 0.4:
        user = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 9)))
        return f"{user}{rng.choice(['@', '.', '_'])}{rng.choice(['example.org', 'mail.net', 'web.io'])} #{rng.randint(1, 999)}"
    if k < 0.6:
        return f"${rng.randint(0, 9999):,}.{rng.randint(0, 99):02d} - {rng.randint(1, 12)}/{rng.randint(1, 28)}/{rng.randint(1900, 2030)}"
    if k < 0.8:
        n = rng.randint(8, 30)
        return "".join(rng.choice(string.printable[:95]) for _ in range(n)).strip() or "x"
    words = [
        "".join(rng.choice(string.ascii_letters) for _ in range(rng.randint(1, 8)))
        for _ in range(rng.randint(2, 6))
    ]
    return " ".join(
        w + rng.choice(["", "", ",", ".", ";", ":", "!", "?", "'s", ")", '"']) for w in words
    )


def pick_span(line: str, rng: random.Random) -> str:
    """A word-aligned span of the line, at most MAX_CHARS long."""
    words = line.split()
    n = rng.randint(1, min(12, len(words)))
    start = rng.randint(0, len(words) - n)
    s = " ".join(words[start : start + n])
    while len(s) > MAX_CHARS and " " in s:
        s = s.rsplit(" ", 1)[0]
    return s[:MAX_CHARS]


# ------------------------------------------------------------------ rendering


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    kind = rng.random()
    base = rng.uniform(170, 255, size=3)
    img = np.ones((h, w, 3), np.float32) * base
    if kind < 0.25:  # gradient
        g = np.linspace(0, 1, w if rng.random() < 0.5 else h, dtype=np.float32)
        g = g[None, :, None] if g.size == w else g[:, None, None]
        img = img * (1 - 0.35 * g) + rng.uniform(150, 255, size=3) * 0.35 * g
    elif kind < 0.5:  # paper texture / noise
        img += rng.normal(0, rng.uniform(3, 18), size=(h, w, 1))
    elif kind < 0.65:  # photo-like blobs
        import cv2

        for _ in range(rng.integers(2, 8)):
            c = tuple(int(x) for x in rng.uniform(140, 255, size=3))
            cv2.circle(
                img,
                (int(rng.integers(0, w)), int(rng.integers(0, h))),
                int(rng.integers(h // 2, 3 * h)),
                c,
                -1,
            )
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(3, 12))
    return np.clip(img, 0, 255)


def _draw_text(text: str, font_path: str, size: int, spacing: float, rng: random.Random):
    """Grey-level coverage mask of the text (float 0..1), tightly sized."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(font_path, size)
    ascent, descent = font.getmetrics()
    widths = [font.getlength(c) for c in text]
    total = int(sum(widths) + spacing * size * max(len(text) - 1, 0)) + size
    h = ascent + descent + 4
    im = Image.new("L", (max(total, 8), h), 0)
    d = ImageDraw.Draw(im)
    if spacing == 0:
        d.text((size // 2, 2), text, font=font, fill=255)
    else:
        x = size / 2
        for c, wc in zip(text, widths, strict=True):
            d.text((x, 2), c, font=font, fill=255)
            x += wc + spacing * size
    return np.asarray(im, dtype=np.float32) / 255.0, ascent


def _thin(mask: np.ndarray, passes: int) -> np.ndarray:
    """Thinner strokes: erode the coverage mask at 3x resolution (`passes`
    3x3 erosions take 2/3 px per pass off each stroke), back to size; what a
    stroke loses entirely stays as a faint trace, as a hairline weight
    renders on a pixel grid."""
    import cv2

    h, w = mask.shape
    up = cv2.resize(mask, (w * 3, h * 3), interpolation=cv2.INTER_LINEAR)
    up = cv2.erode(up, np.ones((3, 3), np.uint8), iterations=passes)
    down = cv2.resize(up, (w, h), interpolation=cv2.INTER_AREA)
    return np.maximum(down, 0.3 * mask)


def render_line(
    text: str,
    font_path: str,
    rng_py: random.Random,
    rng: np.random.Generator,
    neighbours: tuple[str, str],
    version: int = GEN_VERSION,
    thin: bool = False,
) -> np.ndarray:
    """One augmented line image, RGB uint8 (`version`: see GEN_VERSION;
    `thin`: may thin the strokes, version 3 training lines)."""
    import cv2

    size = rng_py.randint(18, 44)
    spacing = 0.0 if rng_py.random() < 0.7 else rng_py.uniform(-0.04, 0.25)
    mask, ascent = _draw_text(text, font_path, size, spacing, rng_py)
    if thin and rng_py.random() < P_THIN:
        mask = _thin(mask, rng_py.choice((1, 2)))
    if rng_py.random() < 0.1:  # underline
        y = min(mask.shape[0] - 2, ascent + max(2, size // 10))
        mask[y : y + max(1, size // 18), size // 2 : -size // 2] = 1.0
    pad_y = int(size * rng_py.uniform(0.15, 0.6))
    pad_x = int(size * rng_py.uniform(0.1, 1.0))
    h, w = mask.shape[0] + 2 * pad_y, mask.shape[1] + 2 * pad_x
    canvas = np.zeros((h, w), np.float32)
    canvas[pad_y : pad_y + mask.shape[0], pad_x : pad_x + mask.shape[1]] = mask
    if rng_py.random() < 0.25:  # clipped neighbouring lines above/below
        for which, nt in zip((-1, 1), neighbours, strict=True):
            if rng_py.random() < 0.6:
                m2, _ = _draw_text(nt[:MAX_CHARS], font_path, size, 0.0, rng_py)
                off = int(m2.shape[0] * rng_py.uniform(0.55, 0.85))
                dx = rng_py.randint(0, pad_x + size)
                if which < 0:
                    part = m2[off:, :]
                    hh = min(part.shape[0], pad_y)
                    ww = min(part.shape[1], w - dx)
                    canvas[:hh, dx : dx + ww] = np.maximum(
                        canvas[:hh, dx : dx + ww], part[-hh:, :ww] if hh else part[:0, :ww]
                    )
                else:
                    part = m2[: m2.shape[0] - off, :]
                    hh = min(part.shape[0], pad_y)
                    ww = min(part.shape[1], w - dx)
                    if hh:
                        canvas[h - hh :, dx : dx + ww] = np.maximum(
                            canvas[h - hh :, dx : dx + ww], part[:hh, :ww]
                        )
    # geometry: rotation / shear, perspective, sine warp
    if rng_py.random() < 0.5:
        ang = rng_py.uniform(-3.0, 3.0)
        shear = rng_py.uniform(-0.25, 0.25) if rng_py.random() < 0.3 else 0.0
        m = cv2.getRotationMatrix2D((w / 2, h / 2), ang, 1.0)
        m[0, 1] += shear
        m[0, 2] -= shear * h / 2
        canvas = cv2.warpAffine(canvas, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    if rng_py.random() < 0.25:
        d = 0.04 * min(w, h * 4)
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = src + rng.uniform(-d, d, size=(4, 2)).astype(np.float32) * np.float32([[1, 0.25]])
        canvas = cv2.warpPerspective(
            canvas, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=0
        )
    if rng_py.random() < 0.2:
        amp, period = rng_py.uniform(0.5, h * 0.06), rng_py.uniform(w * 0.3, w * 2)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        canvas = cv2.remap(
            canvas, xs, ys + amp * np.sin(2 * np.pi * xs / period), cv2.INTER_LINEAR, borderValue=0
        )
    # ink over background
    bg = _background(h, w, rng)
    ink = (
        rng.uniform(0, 90, size=3)
        if rng_py.random() < 0.8
        else rng.uniform(0, 200, size=3) * np.float32([1, 0.4, 0.4])[rng.permutation(3)]
    )
    if rng_py.random() < 0.1:  # light text on dark background
        bg, ink = 255 - bg, 255 - ink
    alpha = canvas[..., None] * rng_py.uniform(0.75, 1.0)
    img = bg * (1 - alpha) + ink * alpha
    # photometric
    if rng_py.random() < 0.15:  # low contrast
        img = img.mean() + (img - img.mean()) * rng_py.uniform(0.3, 0.6)
    if rng_py.random() < 0.35:
        img = cv2.GaussianBlur(img, (0, 0), rng_py.uniform(0.3, 1.3))
    if rng_py.random() < 0.35:
        img = img + rng.normal(0, rng_py.uniform(2, 14), size=img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    if rng_py.random() < 0.12:  # binarised "300 dpi scan": ink threshold on white, speckle
        level = rng_py.uniform(0.35, 0.6)
        if version >= 2:  # relative to the strokes' own coverage (thin glyphs keep their cores)
            strokes = canvas[canvas > 0.05]
            level *= float(np.percentile(strokes, 99)) if strokes.size else 1.0
        bw = np.where(canvas > level, 0, 255).astype(np.uint8)
        speck = rng.random(bw.shape) < rng_py.uniform(0, 0.003)
        bw[speck] = 255 - bw[speck]
        img = cv2.cvtColor(bw, cv2.COLOR_GRAY2RGB)
    if rng_py.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, rng_py.randint(15, 80)])
        img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return img


@dataclass
class Sample:
    image: np.ndarray  # H x W x 3 uint8 RGB
    text: str


# The LM corpus folder (make lm-corpus): train.txt for training lines, and its
# held-out test.txt (kept out of the LM too) for the held-out lines. A single
# file is split by a hash of each line instead.
DEFAULT_CORPUS = Path(
    os.environ.get(
        "CTCLI_TEXT_CORPUS", Path(__file__).resolve().parents[2] / "build" / "lm" / "corpus"
    )
)


def corpus_lines(corpus: str | os.PathLike, held_out: bool) -> list[str]:
    path = Path(corpus)
    if path.is_dir():
        f = path / ("test.txt" if held_out else "train.txt")
        return load_text(f, None) if f.is_file() else []
    return load_text(path, "test" if held_out else "train") if path.is_file() else []


class TextLineGenerator:
    """Deterministic stream of printed-line samples; sample i depends only on (seed, i)."""

    alphabet = ALPHABET

    def __init__(
        self,
        seed: int,
        held_out: bool = False,
        corpus: str | os.PathLike | None = None,
        p_synthetic: float = 0.15,
        version: int = GEN_VERSION,
    ):
        if version not in VERSIONS:
            raise ValueError(f"textline generator version {version} unknown; known: {VERSIONS}")
        self.seed = int(seed)
        self.version = version
        self.held_out = held_out
        self.fonts = font_split(held_out)
        if not self.fonts:
            raise RuntimeError("no fonts found: install Debian font packages (make fonts)")
        path = Path(corpus) if corpus else DEFAULT_CORPUS
        self.lines = corpus_lines(path, held_out)
        self.p_synthetic = p_synthetic if self.lines else 1.0

    def text(self, rng: random.Random) -> str:
        if rng.random() < self.p_synthetic:
            return synthetic_text(rng)[:MAX_CHARS]
        return pick_span(rng.choice(self.lines), rng)

    def sample(self, index: int) -> Sample:
        tag = "heldout" if self.held_out else "train"
        rng_py = random.Random(f"textline:{tag}:{self.seed}:{index}")
        rng = np.random.default_rng(
            int.from_bytes(
                hashlib.sha256(f"{tag}:{self.seed}:{index}".encode()).digest()[:8], "little"
            )
        )
        text = self.text(rng_py)
        font = rng_py.choice(self.fonts)
        img = render_line(
            text,
            font,
            rng_py,
            rng,
            (self.text(rng_py), self.text(rng_py)),
            self.version,
            thin=self.version >= 3 and not self.held_out,
        )
        return Sample(img, text)

    def __iter__(self) -> Iterator[Sample]:
        i = 0
        while True:
            yield self.sample(i)
            i += 1
