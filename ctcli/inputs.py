"""Inputs: files, directories (-r), '-' (stdin) and --files-from.

Produces ordered `InputItem`s. Per-item faults (unreadable, missing) are kept
on the item so the batch goes on; the kind (audio | image) is detected from
the content's magic bytes, with the extension only as a fallback.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ctcli.errors import InputError, NoInputsError, UsageError

AUDIO_EXTS = frozenset(".wav .wave .flac .ogg .oga .opus .mp3 .aiff .aif .au .snd .m4a".split())
IMAGE_EXTS = frozenset(
    ".png .jpg .jpeg .bmp .gif .tif .tiff .webp .pgm .ppm .pbm .pnm .jp2".split()
)

HEADER_BYTES = 64  # enough for every signature below


@dataclass
class InputItem:
    display: str  # the path as shown to the user ("-" for stdin)
    path: Path | None  # None for stdin
    rel: Path  # relative path used to mirror into -o DIR
    data: bytes | None = None  # preloaded content (stdin)
    error: str | None = None  # set when the item could not even be listed

    def read(self) -> bytes:
        """The whole content; raises InputError with a one-line reason."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except IsADirectoryError:
            raise InputError("is a directory") from None
        except FileNotFoundError:
            raise InputError("no such file") from None
        except PermissionError:
            raise InputError("permission denied") from None
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror or e}") from None

    def header(self) -> bytes:
        if self.data is not None:
            return self.data[:HEADER_BYTES]
        assert self.path is not None
        try:
            with open(self.path, "rb") as f:
                return f.read(HEADER_BYTES)
        except OSError:
            return b""


def sniff_kind(head: bytes) -> str | None:
    """'audio', 'image' or None from a file's first bytes."""
    if (
        head.startswith(b"\x89PNG")
        or head.startswith(b"\xff\xd8\xff")
        or head[:6] in (b"GIF87a", b"GIF89a")
    ):
        return "image"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and head[2:3] in (
        b" ",
        b"\n",
        b"\r",
        b"\t",
    ):
        return "image"
    if head.startswith(b"\x00\x00\x00\x0cjP  "):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio"
    if head[:4] in (b"fLaC", b"OggS", b".snd") or head[:3] == b"ID3":
        return "audio"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "audio"
    if len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0 and (head[1] & 0x06) != 0:
        return "audio"  # MPEG audio frame sync (MP3 without ID3)
    if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"mp4", b"iso"):
        return "audio"
    return None


def kind_from_ext(path: Path | None) -> str | None:
    if path is None:
        return None
    ext = path.suffix.lower()
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in IMAGE_EXTS:
        return "image"
    return None


def detect_kind(item: InputItem, head: bytes | None = None) -> str:
    """Content first, then the extension; raises InputError for anything else."""
    head = item.header() if head is None else head
    kind = sniff_kind(head)
    if kind:
        return kind
    if not head:
        if item.path is not None and not os.access(item.path, os.R_OK) and item.path.exists():
            raise InputError("permission denied")
        raise InputError("empty input")
    by_ext = kind_from_ext(item.path)
    if by_ext:
        return by_ext  # let the decoder give the precise reason
    raise InputError("unsupported input type (not a recognised audio or image format)")


def printable(path: str) -> str:
    """A path as shown in output: bytes that are not UTF-8 (kept as lone
    surrogates by Python) become U+FFFD, so stdout never fails on them."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _dir_files(root: Path, recursive: bool) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern) if p.is_file() and kind_from_ext(p)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _read_list(source: str) -> list[str]:
    if source == "-":
        raw = sys.stdin.buffer.read()
    else:
        try:
            raw = Path(source).read_bytes()
        except OSError as e:
            raise UsageError(f"--files-from {source}: {e.strerror or e}") from None
    text = raw.decode("utf-8", errors="surrogateescape")
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def collect(
    paths: list[str], recursive: bool = False, files_from: str | None = None
) -> list[InputItem]:
    """Expand the command line into ordered items. Raises NoInputsError when
    nothing at all matched."""
    args = list(paths)
    if files_from is not None:
        args.extend(_read_list(files_from))
    if args.count("-") > 1:
        raise UsageError("'-' (stdin) may be given only once")
    if "-" in args and files_from == "-":
        raise UsageError("stdin cannot be both an input and --files-from")
    items: list[InputItem] = []
    for arg in args:
        if arg == "-":
            items.append(InputItem("-", None, Path("stdin"), data=sys.stdin.buffer.read()))
            continue
        p = Path(arg)
        if p.is_dir():
            for f in _dir_files(p, recursive):
                items.append(InputItem(printable(str(f)), f, f.relative_to(p)))
        else:
            item = InputItem(printable(arg), p, Path(p.name))
            if not p.exists():
                item.error = "no such file or directory"
            items.append(item)
    if not items:
        raise NoInputsError("no inputs matched (directories hold no audio or image files?)")
    return items
