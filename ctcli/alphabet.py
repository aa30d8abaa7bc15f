"""Output alphabets of CTC models: labels by index, an explicit blank, greedy collapse.

An :class:`Alphabet` is the list of output symbols of a model, in output-index
order, plus the index of the CTC blank. The label ``" "`` (one space) is the
word separator; decoders split text into words on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ctcli.errors import DecoderInputError

SPACE = " "  # the word-separator label


@dataclass(frozen=True)
class Alphabet:
    """Labels of a CTC model by output index, with an explicit blank.

    Attributes:
        labels: One string per output index. The blank's entry is ignored in
            text (conventionally "" or "<blank>"); " " is the word separator.
        blank: Index of the CTC blank.
    """

    labels: tuple[str, ...]
    blank: int = 0

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise DecoderInputError(
                f"an alphabet needs the blank and at least one label, got {len(self.labels)}"
            )
        if not 0 <= self.blank < len(self.labels):
            raise DecoderInputError(
                f"blank index {self.blank} is outside the alphabet (size {len(self.labels)})"
            )
        for i, lab in enumerate(self.labels):
            if not isinstance(lab, str):
                raise DecoderInputError(f"label {i} is not a string: {lab!r}")
        seen: dict[str, int] = {}
        for i, lab in enumerate(self.labels):
            if i == self.blank:
                continue
            if lab == "":
                raise DecoderInputError(f"label {i} is empty (only the blank may be empty)")
            if lab in seen:
                raise DecoderInputError(
                    f"label {lab!r} appears twice (indices {seen[lab]} and {i})"
                )
            seen[lab] = i

    @classmethod
    def from_labels(cls, labels: Sequence[str], blank: int = 0) -> Alphabet:
        return cls(tuple(labels), int(blank))

    @property
    def size(self) -> int:
        return len(self.labels)

    @property
    def space(self) -> int:
        """Index of the word separator " ", or -1 when the alphabet has none."""
        try:
            i = self.labels.index(SPACE)
        except ValueError:
            return -1
        return -1 if i == self.blank else i

    def index(self) -> dict[str, int]:
        """Label -> output index, without the blank."""
        return {lab: i for i, lab in enumerate(self.labels) if i != self.blank}

    def text(self, ids: Sequence[int] | np.ndarray) -> str:
        """Concatenate the labels of already-collapsed, blank-free ids."""
        labs = self.labels
        return "".join(labs[int(i)] for i in ids)

    def encoder(self):
        """A fast ``text -> tuple of ids | None`` function (see :meth:`encode`)."""
        idx = self.index()
        if all(len(k) == 1 for k in idx):

            def enc(text: str) -> tuple[int, ...] | None:
                try:
                    return tuple([idx[ch] for ch in text])
                except KeyError:
                    return None

            return enc
        return lambda text: None if (r := self.encode(text)) is None else tuple(r)

    def encode(self, text: str) -> list[int] | None:
        """Text -> label ids, greedily by longest label; None if a character has no label."""
        idx = self.index()
        maxlen = max(len(k) for k in idx)
        out: list[int] = []
        i = 0
        while i < len(text):
            for n in range(min(maxlen, len(text) - i), 0, -1):
                j = idx.get(text[i : i + n])
                if j is not None:
                    out.append(j)
                    i += n
                    break
            else:
                return None
        return out


def collapse(path: np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CTC collapse of a frame-level label path.

    Args:
        path: [T] int label index per frame.
        blank: blank index.

    Returns:
        (ids, starts, ends): the collapsed labels and, for each, the first
        frame and one past the last frame of its run in ``path``.
    """
    path = np.asarray(path)
    if path.size == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, e, e
    change = np.empty(path.size, dtype=bool)
    change[0] = True
    change[1:] = path[1:] != path[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], path.size)
    ids = path[starts]
    keep = ids != blank
    return ids[keep].astype(np.int64), starts[keep], ends[keep]
