"""Result and Word records, and their documented JSON form.

jsonl schema (one object per input)::

    {"path": str, "text": str | null, "score": float | null, "conf": float | null,
     "words": [{"text", "start", "end", "conf"}]   # only with --words
     "nbest": [{"text", "score", "acoustic_score", "lm_score"}]  # only with --n-best > 1
     "lines": [str]             # images split into several text lines
     "segments": [{"start", "end", "text"}]  # long audio: its VAD segments
     "model": str | null, "error": str | null}

`start`/`end` are seconds for audio and pixels (x in the original image) for
images; `conf` is in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Word:
    text: str
    start: float  # seconds (audio) or pixels (image)
    end: float
    conf: float  # [0, 1]

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "conf": round(self.conf, 4),
        }


@dataclass
class NBest:
    text: str
    score: float
    acoustic_score: float
    lm_score: float

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "score": round(self.score, 4),
            "acoustic_score": round(self.acoustic_score, 4),
            "lm_score": round(self.lm_score, 4),
        }


@dataclass
class Result:
    path: str  # as given by the user ("-" for stdin)
    text: str | None = None
    score: float | None = None
    conf: float | None = None
    words: list[Word] = field(default_factory=list)
    nbest: list[NBest] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    segments: list[tuple[float, float, str]] = field(
        default_factory=list
    )  # long audio: VAD segments
    kind: str | None = None  # "audio" | "image"
    duration: float | None = None  # seconds of audio
    model: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, words: bool = False, nbest: bool = False) -> dict:
        d: dict = {
            "path": self.path,
            "text": self.text,
            "score": None if self.score is None else round(self.score, 4),
            "conf": None if self.conf is None else round(self.conf, 4),
        }
        if words:
            d["words"] = [w.to_dict() for w in self.words]
        if nbest and self.nbest:
            d["nbest"] = [h.to_dict() for h in self.nbest]
        if len(self.lines) > 1:
            d["lines"] = self.lines
        if self.segments:
            d["segments"] = [
                {"start": round(a, 3), "end": round(b, 3), "text": t} for a, b, t in self.segments
            ]
        d["model"] = self.model
        d["error"] = self.error
        return d


def tidy_text(text: str) -> str:
    """Displayed text: no spaces at the ends, single spaces between words (a
    beam may end a hypothesis on a word boundary, or emit two in a row)."""
    if "  " in text or text[:1] == " " or text[-1:] == " ":
        return " ".join(w for w in text.split(" ") if w)
    return text
