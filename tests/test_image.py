"""Decoding and line preprocessing."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

from ctcli.errors import InputError
from ctcli.image import decode_image, load_lines, preprocess_line, to_gray


def _png(arr: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt)
    return buf.getvalue()


def _text_image(lines: list[str], size: int = 28, fg: int = 0, bg: int = 255) -> np.ndarray:
    font = ImageFont.load_default(size=size)
    im = Image.new("L", (40 + 18 * max(map(len, lines)), 20 + int(size * 1.8) * len(lines)), bg)
    d = ImageDraw.Draw(im)
    for i, t in enumerate(lines):
        d.text((20, 10 + int(size * 1.8) * i), t, fill=fg, font=font)
    return np.asarray(im)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_decode_formats(fmt):
    arr = _text_image(["1+2=3"])
    g = decode_image(_png(arr, fmt=fmt))
    assert g.dtype == np.uint8 and g.shape == arr.shape
    assert abs(float(g.mean()) - float(arr.mean())) < 8


def test_decode_rgba_on_white():
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent -> white
    g = decode_image(_png(rgba, "RGBA"))
    assert g.min() >= 250


@pytest.mark.parametrize(
    "data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\0" * 30, b"GIF89a\x01"]
)
def test_decode_rejects_garbage(data):
    with pytest.raises(InputError):
        decode_image(data)


def test_decode_rejects_huge_header():
    def chunk(kind, payload):
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload))
        )

    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    )
    png += chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    with pytest.raises(InputError, match="too large"):
        decode_image(png)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_decode_fuzz(data):
    try:
        g = decode_image(data)
        assert g.dtype == np.uint8 and g.ndim == 2
    except InputError:
        pass


def test_to_gray_variants():
    assert to_gray(np.zeros((3, 4, 3), np.uint8)).shape == (3, 4)
    assert to_gray(np.full((3, 4), 65535, np.uint16)).max() == 255
    assert to_gray(np.ones((3, 4), np.float32)).max() == 255


def test_preprocess_height_polarity_and_crop():
    arr = _text_image(["12+34=46"])
    line = preprocess_line(arr, 32)
    assert line.array.dtype == np.float32 and line.array.shape[0] == 32
    assert 0.0 <= line.array.min() and line.array.max() <= 1.0
    assert line.array.mean() < 0.5  # background low, ink high
    assert line.x0 > 5 and line.y0 > 2  # the white margin was cropped
    inv = preprocess_line(255 - arr, 32)  # light ink on dark
    assert inv.array.shape == line.array.shape
    assert np.abs(inv.array - line.array).mean() < 0.05
    # aspect kept: width scales with the crop
    assert abs(line.array.shape[1] / 32 - line.scale * (arr.shape[1] - 2 * line.x0) / 32) < 3


def test_stretch_widens_the_line_and_maps_back():
    from ctcli.image import resize_to_height

    arr = _text_image(["(1-9)-4=-12"])
    plain = preprocess_line(arr, 32, "median")
    wide = preprocess_line(arr, 32, "median", stretch=1.5)
    assert wide.array.shape[0] == 32
    assert abs(wide.array.shape[1] - 1.5 * plain.array.shape[1]) <= 2
    assert wide.scale == pytest.approx(1.5 * plain.scale)  # horizontal px per original px
    assert (wide.x0, wide.y0) == (plain.x0, plain.y0)
    # the same ink, columns spread out: squeezing it back gives the plain line
    import cv2

    back = cv2.resize(wide.array, plain.array.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(back - plain.array).mean() < 0.03
    # stretch 1 is the aspect-keeping resize, bit for bit
    ink = np.random.default_rng(0).random((50, 120)).astype(np.float32)
    a1, s1 = resize_to_height(ink, 32)
    a2, s2 = resize_to_height(ink, 32, 1.0)
    assert np.array_equal(a1, a2) and s1 == s2 == 32 / 50
    # lines split for width use the stretched limit and still map to the original
    from ctcli.image import MAX_LINE_ASPECT

    long = _text_image(["1+2=3 " * 60])
    whole = preprocess_line(long, 32, "median", stretch=2.0)
    pieces = load_lines(long, 32, crop="median", stretch=2.0)
    assert whole.array.shape[1] > 2 * 32 * MAX_LINE_ASPECT and len(pieces) > 1
    assert all(p.array.shape[1] <= 2 * 32 * MAX_LINE_ASPECT for p in pieces)
    assert sum(p.array.shape[1] for p in pieces) == whole.array.shape[1]
    # each piece's x0 (original px) is its first column divided by the horizontal scale
    assert pieces[1].x0 == whole.x0 + round(pieces[0].array.shape[1] / whole.scale)


def test_blank_and_tiny_images():
    line = preprocess_line(np.full((5, 7), 200, np.uint8), 32)
    assert line.array.shape[0] == 32 and not np.isnan(line.array).any()
    assert len(load_lines(np.full((1, 1), 0, np.uint8), 32)) == 1
    with pytest.raises(InputError):
        load_lines(np.zeros((0, 5), np.uint8), 32)


def test_load_lines_splits_in_reading_order():
    arr = _text_image(["111", "2222222", "33"], size=24)
    lines = load_lines(arr, 32)
    assert len(lines) == 3
    assert [ln.y0 for ln in lines] == sorted(ln.y0 for ln in lines)
    widths = [ln.array.shape[1] for ln in lines]
    assert widths[1] > widths[0] > widths[2]
    assert len(load_lines(arr, 32, split=False)) == 1


def test_captchas_are_single_lines():
    from ctcli.image import rgb_to_gray
    from ctcli.synth.expr import ExprCaptchaGenerator

    g = ExprCaptchaGenerator(99)
    for i in range(20):
        assert len(load_lines(rgb_to_gray(g.sample(i).image), 32)) == 1


def test_very_wide_line_is_cut():
    arr = _text_image(["1234567890" * 40], size=16)
    lines = load_lines(arr, 32)
    assert len(lines) >= 2
    assert all(ln.array.shape[1] <= 60 * 32 for ln in lines)
    assert [ln.x0 for ln in lines] == sorted(ln.x0 for ln in lines)


def test_clipped_neighbour_line_is_not_a_line():
    """A one-line crop with the bottom half of the line above it at the top
    edge reads as one line; two whole lines stay two."""
    import cv2

    def text(img, y):
        cv2.putText(img, "Hello there world", (5, y), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 0, 2)

    img = np.full((70, 320), 255, np.uint8)
    text(img, 8)  # only the lower part of this line is inside the image
    text(img, 50)
    assert len(load_lines(img, 32)) == 1
    two = np.full((100, 320), 255, np.uint8)
    text(two, 35)
    text(two, 80)
    assert len(load_lines(two, 32)) == 2


def test_median_crop_keeps_faint_text_among_dark_specks():
    """Faint text plus a few darker specks (a captcha's noise dots): the fixed
    0.5 threshold sees only the specks and crops the text away; median keeps it."""
    from ctcli.image import crop_box, normalise

    clean = _text_image(["12+34=46"], fg=170)  # light gray text on white
    rows = np.flatnonzero((clean < 230).any(axis=1))
    cols = np.flatnonzero((clean < 230).any(axis=0))
    g = clean.copy()
    rng = np.random.default_rng(0)
    h, w = g.shape
    for y, x in zip(rng.integers(h // 2, h - 3, 20), rng.integers(w // 2, w - 3, 20), strict=True):
        g[y : y + 3, x : x + 3] = 0  # black specks, all in the lower right quarter
    ink = normalise(g)
    fy0, fy1, fx0, fx1 = crop_box(ink, "fixed")
    oy0, oy1, ox0, ox1 = crop_box(ink, "median")
    assert fx0 > cols.min() + 20  # the old crop starts among the specks
    # within the crop's trim of the outermost 0.2% of ink (a faint glyph edge)
    assert ox0 <= cols.min() + 3 and ox1 >= cols.max() - 3
    assert oy0 <= rows.min() + 3 and oy1 >= rows.max() - 3
    assert preprocess_line(g, 32, "median").array.shape[1] > preprocess_line(g, 32).array.shape[1]
    with pytest.raises(ValueError):
        crop_box(ink, "bogus")


def test_grow_crop_keeps_small_marks_at_the_ends_and_drops_far_specks():
    """A line's ends often carry little ink (a trailing comma, a closing
    bracket): the quantile crop trims them while the label keeps them. `grow`
    takes back every blob joined to the line, and nothing far from it."""
    from ctcli.image import GROW_GAP, GROW_Y, crop_box, normalise

    g = np.full((80, 600), 255, np.uint8)
    g[30:50, 100:420] = 0  # the line's body: 20 px high
    g[44:56, 426:428] = 0  # a comma 6 px to the right, its tail 6 px below the body
    g[40:42, 431:433] = 0  # and a 2x2 dot beyond it (joins through the comma)
    far = 433 + int(GROW_GAP * 20) + 8
    g[40:44, far : far + 2] = 0  # a mark too far right to belong to the line
    g[10, 60] = 0  # a one-pixel speck
    g[16:30, 200:202] = 0  # a clipped neighbouring line touching the body from above
    ink = normalise(g)
    my0, my1, mx0, mx1 = crop_box(ink, "median")
    gy0, gy1, gx0, gx1 = crop_box(ink, "grow")
    assert mx1 < 426  # the quantile crop cuts the comma off
    assert 433 <= gx1 < far  # grow keeps comma and dot, not the far mark
    assert gy1 >= 56 and my1 < 56  # the comma's tail
    assert gx0 > 60 - 3 and gx0 <= 100  # the speck is ignored
    m = gy1 - 56  # the margin
    assert gy0 == 30 - int(round(GROW_Y * 20)) - m  # the neighbour: growth stops at GROW_Y
    line = preprocess_line(g, 32, "grow")
    assert (line.x0, line.y0) == (gx0, gy0)
    assert line.array.shape[1] == round((gx1 - gx0) * 32 / (gy1 - gy0))


def test_local_normalisation_evens_out_a_changing_background():
    """Dark text over a background that changes along the line (a dark patch
    in the middle): the global median makes the patch ink and loses the
    text on it; the local background estimate keeps one ink level."""
    from ctcli.image import normalise, normalise_local

    g = _text_image(["abc def ghi jkl mno"], fg=60).astype(np.int16)
    text = g < 160
    h, w = g.shape
    g[:, w // 3 : 2 * w // 3] -= 110  # a dark patch under the middle third, text still darker
    g = np.clip(g, 0, 255).astype(np.uint8)
    patch = np.zeros_like(text)
    patch[:, w // 3 + 10 : 2 * w // 3 - 10] = True
    old, new = normalise(g), normalise_local(g)
    assert old[patch & ~text].mean() > 0.3  # the patch's paper became ink
    assert new[patch & ~text].mean() < 0.1 and new[~patch & ~text].mean() < 0.1
    assert new[patch & text].mean() > 0.5 and new[~patch & text].mean() > 0.5
    # light text on a dark line comes out ink-high too, and so does a plain line
    inv = normalise_local(255 - _text_image(["xyz uvw"], fg=0))
    plain = normalise_local(_text_image(["xyz uvw"], fg=0))
    assert np.corrcoef(inv.ravel(), plain.ravel())[0, 1] > 0.95
    line = preprocess_line(g, 32, "local")
    assert line.array.shape[0] == 32 and line.array.shape[1] > 32 * 5
