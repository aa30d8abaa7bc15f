"""Image decoding and line preprocessing, shared by training and inference.

One function, :func:`preprocess_line`, turns a grayscale crop into the model
input; ``ctcli train`` builds its data set with it and ``ctcli transcribe``
calls it at run time, so the two cannot drift.

Model input convention: float32 ``[H, W]``, ink high (1.0), background 0.0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ctcli.errors import InputError

MAX_PIXELS = 100_000_000  # refuse images above 100 megapixels (decompression bombs)
MIN_CONTRAST = 24  # grey levels: below this the image is treated as blank
MAX_LINE_ASPECT = 60  # W/H of one preprocessed line before it is cut into pieces
MARGIN = 0.06  # of the crop height, kept around the ink on every side


@dataclass
class Line:
    """One text line ready for the model."""

    array: np.ndarray  # float32 [H, W], ink 1.0, background 0.0
    x0: int  # left of the crop in original pixels
    y0: int  # top of the crop in original pixels
    scale: float  # preprocessed px per original px, horizontally (see stretch)


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) read from a PNG/GIF/BMP/JPEG header, or None if unknown."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:2] == b"\xff\xd8":
            i = 2
            while i + 9 < len(data):
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                seg = struct.unpack(">H", data[i + 2 : i + 4])[0]
                if marker in (
                    0xC0,
                    0xC1,
                    0xC2,
                    0xC3,
                    0xC5,
                    0xC6,
                    0xC7,
                    0xC9,
                    0xCA,
                    0xCB,
                    0xCD,
                    0xCE,
                    0xCF,
                ):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return w, h
                i += 2 + seg
    except struct.error:
        return None
    return None


def decode_image(data: bytes) -> np.ndarray:
    """Decode image bytes (PNG, JPEG, BMP, GIF, TIFF, WebP, ...) to grayscale uint8 [H, W].

    Raises:
        InputError: empty, corrupt or non-image data, or more than MAX_PIXELS.
    """
    if not data:
        raise InputError("not a decodable image (empty input)")
    size = _header_size(bytes(data[:65536]))
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise InputError(f"image too large ({size[0]}x{size[1]} pixels)")
    import cv2

    buf = np.frombuffer(data, dtype=np.uint8)
    img = None
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        img = None
    if img is None:
        img = _decode_with_pillow(data)
    if img is None or img.size == 0:
        raise InputError("not a decodable image")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise InputError(f"image too large ({img.shape[1]}x{img.shape[0]} pixels)")
    return to_gray(img)


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    """Fallback decoder (GIF and a few formats OpenCV lacks)."""
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > MAX_PIXELS:
                    raise InputError(f"image too large ({im.size[0]}x{im.size[1]} pixels)")
                im.load()
                if im.mode not in ("L", "RGB", "RGBA"):
                    im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
                arr = np.asarray(im)
                if arr.ndim == 3:  # Pillow is RGB(A); OpenCV convention below is BGR(A)
                    arr = arr[..., ::-1] if arr.shape[2] == 3 else arr[..., [2, 1, 0, 3]]
                return np.ascontiguousarray(arr)
    except InputError:
        raise
    except Exception:
        return None


def to_gray(img: np.ndarray) -> np.ndarray:
    """Any OpenCV-style array (gray, BGR, BGRA; 8/16-bit or float) -> uint8 [H, W].

    Transparent pixels are composited onto white.
    """
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        f = img.astype(np.float32)
        if f.max() <= 1.0:
            f = f * 255.0
        img = np.clip(f, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 1:
        return img[..., 0]
    if img.shape[2] == 4:
        alpha = img[..., 3:4].astype(np.float32) / 255.0
        bgr = img[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        img = bgr.astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [H, W, 3] (Pillow order) -> uint8 [H, W]."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _ink_extremes(g: np.ndarray, bg: float) -> tuple[float, float, bool]:
    """(darkest, lightest, dark_ink) of float gray `g` around background
    level `bg`: the 0.5% / 99.5% levels, and whether the ink is the side
    further from the background (dark ink on light paper)."""
    lo, hi = np.percentile(g, [0.5, 99.5])
    return float(lo), float(hi), bg - lo >= hi - bg


def normalise(gray: np.ndarray) -> np.ndarray:
    """Contrast normalisation: uint8 gray -> float32 ink map in [0, 1].

    The background level is the median (the page is mostly background); dark
    ink on light paper and light ink on dark paper both come out ink-high.
    """
    g = gray.astype(np.float32)
    bg = float(np.median(g))
    lo, hi, dark = _ink_extremes(g, bg)
    if dark:  # dark ink on a light background
        ink, x = lo, bg - g
    else:
        ink, x = hi, g - bg
    span = max(abs(bg - ink), MIN_CONTRAST)
    return np.clip(x / span, 0.0, 1.0)


LOCAL_BG_SCALE = 0.5  # local: background window, in line heights


def _local_ink(g: np.ndarray, k: int) -> np.ndarray:
    """Dark-ink map of float gray `g`: its grey-level closing (window k, wider
    than any stroke: the background with the strokes filled in) minus g."""
    import cv2

    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    smooth = cv2.GaussianBlur(g, (0, 0), 1.0)  # noise must not lift the estimate
    back = cv2.morphologyEx(smooth, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    x = back - g
    return x - float(np.median(x))  # what is left of the background's own noise


def normalise_local(gray: np.ndarray) -> np.ndarray:
    """Contrast normalisation against a local background estimate: uint8 gray
    (one line) -> float32 ink map in [0, 1].

    The polarity is decided as in `normalise`, but with the background level
    taken from the image's 2-px frame (margins are background; the median of
    the whole line is not when a patch of another colour fills its middle).
    The background under the text is then a grey-level closing of the
    (ink-dark) image with a window of half the line height, wider than any
    stroke, so strokes vanish from it while gradients, blobs and coloured
    patches stay; ink is the difference. Text on a background that changes
    along the line (a photo, a gradient, a stamp) keeps one ink level, where
    the global median of `normalise` turned part of the background into ink
    and part of the text into background.
    """
    g = gray.astype(np.float32)
    frame = np.concatenate([g[:2].ravel(), g[-2:].ravel(), g[:, :2].ravel(), g[:, -2:].ravel()])
    if not _ink_extremes(g, float(np.median(frame)))[2]:  # light ink: make it dark
        g = 255.0 - g
    x = _local_ink(g, max(5, int(round(LOCAL_BG_SCALE * g.shape[0])) | 1))
    span = max(float(np.percentile(x, 99.5)), MIN_CONTRAST)
    return np.clip(x / span, 0.0, 1.0)


def _ink_bounds(mass: np.ndarray, lo_q: float = 0.005, hi_q: float = 0.995) -> tuple[int, int]:
    """Index range [a, b) holding the central quantiles of a 1-D ink profile."""
    c = np.cumsum(mass, dtype=np.float64)
    total = c[-1]
    if total <= 0:
        return 0, len(mass)
    a = int(np.searchsorted(c, lo_q * total, side="left"))
    b = int(np.searchsorted(c, hi_q * total, side="left")) + 1
    return a, min(max(b, a + 1), len(mass))


# Line preprocessing modes (recorded per model and per data dir as "crop"):
# fixed, median and grow differ in the crop (see ink_threshold and crop_box);
# local is the grow crop after normalise_local instead of normalise.
CROP_MODES = ("fixed", "median", "grow", "local")


def ink_threshold(ink: np.ndarray, crop: str = "fixed") -> float:
    """Ink level above which a pixel counts as ink when cropping.

    ``fixed``: 0.5 (what the first models were trained with). ``median``:
    half the median level of the pixels clearly off the background (ink >
    0.1), clamped to [0.1, 0.5]. It matters when a few dark specks set the
    contrast scale and the text itself is fainter (the noise dots of
    ``captcha`` images): at 0.5 only the specks count as ink and the crop cuts
    the text away. On clean dark text both give 0.5 or close to it. ``grow``
    uses the ``median`` threshold (its box differs; see crop_box).
    """
    if crop == "fixed":
        return 0.5
    if crop not in ("median", "grow", "local"):
        raise ValueError(f"unknown crop mode {crop!r} (expected one of {CROP_MODES})")
    fg = ink[ink > 0.1]
    if fg.size == 0:
        return 0.5
    return float(np.clip(np.median(fg) / 2, 0.1, 0.5))


def ink_mask(ink: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary ink mask with speckle (isolated dots) removed when strokes are thick enough."""
    import cv2

    mask = (ink > threshold).astype(np.uint8)
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    if opened.sum() >= 0.3 * mask.sum() and opened.any():
        return opened
    return mask


GROW_GAP = 0.6  # grow: largest horizontal gap bridged, in core heights
GROW_Y = 0.5  # grow: most a side may grow vertically, in core heights
GROW_MIN_AREA = 3  # grow: smaller ink blobs (pixel noise) never extend the box


def _grow_box(raw: np.ndarray, y0: int, y1: int, x0: int, x1: int) -> tuple[int, int, int, int]:
    """Extend a core box to take in every ink blob joined to the line.

    The core (central quantiles of the ink) is robust to specks but trims
    what carries little ink at the ends: a trailing period or comma, the
    tail of a comma or a descender, a closing bracket, a thin first letter.
    Those were cut from many training lines while their labels kept them.
    Here every connected blob of ``raw`` (area >= GROW_MIN_AREA) whose rows
    meet the core's rows and which lies within GROW_GAP core heights of the
    box, left or right, joins it, repeatedly (so a run of small marks joins
    too); rows grow to the joined blobs' extent, at most GROW_Y core heights
    per side (a clipped neighbouring line touching the text stops there).
    """
    import cv2

    n, _, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
    if n <= 1:
        return y0, y1, x0, x1
    bx, by, bw, bh, area = (stats[1:, k] for k in range(5))
    core_h = max(1, y1 - y0)
    keep = (area >= GROW_MIN_AREA) & (by < y1) & (by + bh > y0)
    bx, by, bw, bh = bx[keep], by[keep], bw[keep], bh[keep]
    gap = GROW_GAP * core_h
    joined = np.zeros(len(bx), bool)
    while True:
        new = ~joined & (bx <= x1 + gap) & (bx + bw >= x0 - gap)
        if not new.any():
            break
        joined |= new
        x0 = min(x0, int(bx[new].min()))
        x1 = max(x1, int((bx[new] + bw[new]).max()))
    if joined.any():
        lim = int(round(GROW_Y * core_h))
        y0 = max(y0 - lim, min(y0, int(by[joined].min())))
        y1 = min(y1 + lim, max(y1, int((by[joined] + bh[joined]).max())))
    return y0, y1, x0, x1


def crop_box(ink: np.ndarray, crop: str = "fixed") -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) box around the ink, with a margin; the whole image if blank.

    The box holds the central quantiles of the (despeckled) ink; ``grow``
    then extends it to the small marks at its edges (see _grow_box)."""
    h, w = ink.shape
    thr = ink_threshold(ink, crop)
    mask = ink_mask(ink, thr)
    if not mask.any():
        return 0, h, 0, w
    y0, y1 = _ink_bounds(mask.sum(axis=1))
    x0, x1 = _ink_bounds(mask.sum(axis=0), 0.002, 0.998)
    m = max(1, int(round(MARGIN * (y1 - y0))))
    if crop in ("grow", "local"):
        y0, y1, x0, x1 = _grow_box((ink > thr).astype(np.uint8), y0, y1, x0, x1)
    return max(0, y0 - m), min(h, y1 + m), max(0, x0 - m), min(w, x1 + m)


def resize_to_height(
    ink: np.ndarray, height: int, stretch: float = 1.0
) -> tuple[np.ndarray, float]:
    """Resize to `height`, the width by the same factor times `stretch`
    (1: aspect ratio kept; 1.5: 50% wider, more columns per glyph for
    squeezed text); returns (array, horizontal scale)."""
    import cv2

    h, w = ink.shape
    scale = height / h * stretch
    new_w = max(4, int(round(w * scale)))
    if stretch == 1.0:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        out = cv2.resize(ink, (new_w, height), interpolation=interp)
    else:  # one axis at a time: area when shrinking, linear when enlarging
        out = cv2.resize(
            ink, (new_w, h), interpolation=cv2.INTER_AREA if new_w < w else cv2.INTER_LINEAR
        )
        out = cv2.resize(
            out, (new_w, height), interpolation=cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
        )
    return np.ascontiguousarray(out, dtype=np.float32), scale


def preprocess_line(
    gray: np.ndarray, height: int, crop: str = "fixed", stretch: float = 1.0
) -> Line:
    """One line image (uint8 gray) -> model-ready Line: normalise, crop to ink
    (`crop`: see ink_threshold), resize (`stretch`: see resize_to_height)."""
    if gray.ndim != 2 or gray.size == 0:
        raise InputError("empty image")
    ink = normalise_local(gray) if crop == "local" else normalise(gray)
    y0, y1, x0, x1 = crop_box(ink, crop)
    arr, scale = resize_to_height(ink[y0:y1, x0:x1], height, stretch)
    return Line(arr, x0, y0, scale)


def split_rows(ink: np.ndarray, min_gap: int = 2) -> list[tuple[int, int]]:
    """Text-line bands (y0, y1) found by the horizontal projection profile."""
    import cv2

    u8 = np.round(ink * 255).astype(np.uint8)
    thr, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (u8 > max(thr, 40)).astype(np.uint8)  # Otsu: faint strokes count as ink here
    opened = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    if opened.sum() >= 0.3 * mask.sum():
        mask = opened
    h = mask.shape[0]
    prof = mask.sum(axis=1)
    thresh = max(1, int(0.002 * mask.shape[1]))
    on = prof >= thresh
    bands: list[list[int]] = []
    y = 0
    while y < h:
        if on[y]:
            start = y
            while y < h and on[y]:
                y += 1
            bands.append([start, y])
        else:
            y += 1
    if not bands:
        return [(0, h)]
    # merge bands whose gap is small relative to their height (rotated glyphs,
    # noise, accents), then drop specks much shorter than the tallest line
    merged = [bands[0]]
    for b in bands[1:]:
        hmax = max(b[1] - b[0], merged[-1][1] - merged[-1][0])
        if b[0] - merged[-1][1] < max(min_gap, 0.25 * hmax):
            merged[-1][1] = b[1]
        else:
            merged.append(b)
    tallest = max(b[1] - b[0] for b in merged)
    keep = [b for b in merged if b[1] - b[0] >= max(3, 0.4 * tallest)]
    # a band cut by the top or bottom edge and clearly shorter than the
    # tallest is a clipped neighbouring line (a crop of one line), not a line
    keep = [
        b
        for b in keep
        if not ((b[0] <= 1 or b[1] >= h - 1) and b[1] - b[0] < 0.7 * tallest and len(keep) > 1)
    ] or keep
    if len(keep) <= 1:
        return [(0, h)]
    # extend each band half-way into the gaps so ascenders/descenders are kept
    out = []
    for i, (a, b) in enumerate(keep):
        top = 0 if i == 0 else (keep[i - 1][1] + a) // 2
        bot = h if i == len(keep) - 1 else (b + keep[i + 1][0]) // 2
        out.append((top, bot))
    return out


def _split_wide(line: Line, height: int, stretch: float = 1.0) -> list[Line]:
    """Cut a very long line at low-ink columns into pieces of at most
    MAX_LINE_ASPECT * H * stretch px."""
    arr = line.array
    max_w = int(MAX_LINE_ASPECT * height * stretch)
    if arr.shape[1] <= max_w:
        return [line]
    prof = arr.sum(axis=0)
    pieces, start = [], 0
    while arr.shape[1] - start > max_w:
        lo = start + max_w // 2
        cut = lo + int(np.argmin(prof[lo : start + max_w]))
        pieces.append((start, cut))
        start = cut
    pieces.append((start, arr.shape[1]))
    return [
        Line(
            np.ascontiguousarray(arr[:, a:b]),
            line.x0 + int(round(a / line.scale)),
            line.y0,
            line.scale,
        )
        for a, b in pieces
    ]


def load_lines(
    gray: np.ndarray, height: int, split: bool = True, crop: str = "fixed", stretch: float = 1.0
) -> list[Line]:
    """Grayscale image -> model-ready lines in reading order (top to bottom, left to right).

    With ``split=False`` (or a single detected line) the whole image is one line.
    """
    if gray.ndim != 2 or gray.size == 0:
        raise InputError("empty image")
    if not split:
        return [preprocess_line(gray, height, crop, stretch)]
    ink = normalise(gray)
    bands = split_rows(ink)
    lines: list[Line] = []
    for y0, y1 in bands:
        line = preprocess_line(gray[y0:y1], height, crop, stretch)
        line.y0 += y0
        lines.extend(_split_wide(line, height, stretch))
    return lines


def load_path(path: str) -> np.ndarray:
    """Read an image file to grayscale uint8."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from None
    return decode_image(data)
