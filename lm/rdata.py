"""Minimal reader for R's serialization format (XDR, versions 2 and 3) and
lazy-load databases (*.rdx / *.rdb), enough to pull character vectors out of
an installed R data package (r-cran-janeaustenr) without R.

Only what data packages use is supported: vectors, lists, pairlists,
symbols, attributes and references; anything else raises ValueError.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path


class _Reader:
    def __init__(self, data: bytes):
        self.d = data
        self.i = 0
        self.refs: list = []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.d, self.i)
        self.i += 4
        return v

    def bytes(self, n: int) -> bytes:
        b = self.d[self.i : self.i + n]
        self.i += n
        return b

    def length(self) -> int:
        n = self.int()
        if n == -1:
            hi, lo = self.int(), self.int()
            n = (hi << 32) + lo
        return n

    def header(self) -> None:
        if self.bytes(2) != b"X\n":
            raise ValueError("not an XDR R serialization")
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            self.bytes(self.int())

    def item(self):  # noqa: C901 - one branch per SEXP type
        flags = self.int()
        t = flags & 0xFF
        has_attr = bool(flags & (1 << 9))
        has_tag = bool(flags & (1 << 10))
        if t in (254, 253, 242, 241, 251, 252, 247, 240):  # NULL, envs, markers
            return None
        if t == 255:  # REFSXP
            idx = flags >> 8
            if idx == 0:
                idx = self.int()
            return self.refs[idx - 1]
        if t == 1:  # SYMSXP
            name = self.item()
            self.refs.append(name)
            return name
        if t == 9:  # CHARSXP
            n = self.int()
            return None if n == -1 else self.bytes(n).decode("utf-8", "replace")
        if t in (2, 6):  # LISTSXP / LANGSXP: pairlist
            out = []
            while True:
                attr = self.item() if has_attr else None
                tag = self.item() if has_tag else None
                out.append((tag, self.item()))
                del attr
                nxt = self.int()
                self.i -= 4
                t2 = nxt & 0xFF
                if t2 not in (2, 6):
                    self.item()  # the terminating CDR (usually NULL)
                    return out
                self.i += 4
                has_attr = bool(nxt & (1 << 9))
                has_tag = bool(nxt & (1 << 10))
        if t == 4:  # ENVSXP
            env: dict = {}
            self.refs.append(env)
            self.int()
            self.item()
            frame = self.item()
            hashtab = self.item()
            self.item()
            for part in (frame, hashtab):
                for k, v in _pairs(part):
                    env[k] = v
            return env
        if t in (10, 13):  # LGLSXP, INTSXP
            n = self.length()
            v = list(struct.unpack_from(f">{n}i", self.d, self.i))
            self.i += 4 * n
        elif t == 14:  # REALSXP
            n = self.length()
            v = list(struct.unpack_from(f">{n}d", self.d, self.i))
            self.i += 8 * n
        elif t == 16:  # STRSXP
            v = [self.item() for _ in range(self.length())]
        elif t in (19, 20):  # VECSXP, EXPRSXP
            v = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"unsupported R object type {t}")
        if has_attr:
            v = RVector(v)
            v.attrs = {k: a for k, a in _pairs(self.item())}
        return v


class RVector(list):
    """A vector with R attributes (names, class, ...)."""

    attrs: dict


def _pairs(x):
    if isinstance(x, list):
        for e in x:
            if isinstance(e, tuple):
                yield e
            elif isinstance(e, list):
                yield from _pairs(e)


def unserialize(data: bytes):
    r = _Reader(data)
    r.header()
    return r.item()


def read_lazyload(prefix: str | Path) -> dict:
    """{name: object} from a lazy-load database ``prefix.rdx`` + ``prefix.rdb``."""
    prefix = str(prefix)
    index = unserialize(gzip.decompress(Path(prefix + ".rdx").read_bytes()))
    variables = index[0]
    names = variables.attrs["names"]
    db = Path(prefix + ".rdb").read_bytes()
    out = {}
    for name, (off, n) in zip(names, variables, strict=True):
        blob = db[off : off + n]
        (size,) = struct.unpack(">I", blob[:4])
        data = zlib.decompress(blob[4:])
        if len(data) != size:
            raise ValueError(f"{name}: bad block size")
        out[name] = unserialize(data)
    return out
