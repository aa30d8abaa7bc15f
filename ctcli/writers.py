"""Output formats, one class per format, each writing to a text stream.

A writer is told about each result in input order; `begin`/`end` frame the
whole stream (the JSON array brackets). Error results produce a record only in
jsonl/json; the other formats leave them to the one-line stderr message.
"""

from __future__ import annotations

import json
from typing import TextIO

from ctcli.results import Result

FORMATS = ("txt", "tsv", "jsonl", "json", "srt", "vtt")
AUDIO_ONLY = ("srt", "vtt")
EXTENSIONS = {
    "txt": ".txt",
    "tsv": ".tsv",
    "jsonl": ".jsonl",
    "json": ".json",
    "srt": ".srt",
    "vtt": ".vtt",
}

# Subtitle cue limits.
CUE_MAX_SECONDS = 6.0  # longest cue
CUE_MAX_CHARS = 42  # longest cue text (one subtitle line)
CUE_PAUSE_SECONDS = 0.6  # a pause this long between words starts a new cue


class Writer:
    def __init__(self, out: TextIO, words: bool = False, nbest: bool = False):
        self.out = out
        self.words = words
        self.nbest = nbest

    def begin(self) -> None:
        pass

    def write(self, result: Result) -> None:
        raise NotImplementedError

    def end(self) -> None:
        pass


class TxtWriter(Writer):
    def write(self, result: Result) -> None:
        if result.ok:
            self.out.write(result.text + "\n")


def _tsv_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


class TsvWriter(Writer):
    """path <TAB> text; with --words, one extra column of word:start:end:conf."""

    def write(self, result: Result) -> None:
        if not result.ok:
            return
        cols = [_tsv_escape(result.path), _tsv_escape(result.text or "")]
        if self.words:
            cols.append(
                " ".join(
                    f"{_tsv_escape(w.text)}:{w.start:.3f}:{w.end:.3f}:{w.conf:.3f}"
                    for w in result.words
                )
            )
        self.out.write("\t".join(cols) + "\n")


class JsonlWriter(Writer):
    def write(self, result: Result) -> None:
        self.out.write(
            json.dumps(result.to_dict(self.words, self.nbest), ensure_ascii=False) + "\n"
        )


class JsonWriter(Writer):
    """A JSON array, streamed one element at a time."""

    def begin(self) -> None:
        self._n = 0
        self.out.write("[")

    def write(self, result: Result) -> None:
        self.out.write(
            ("\n" if self._n == 0 else ",\n")
            + json.dumps(result.to_dict(self.words, self.nbest), ensure_ascii=False)
        )
        self._n += 1

    def end(self) -> None:
        self.out.write("\n]\n")


def cues(result: Result) -> list[tuple[float, float, str]]:
    """Group a result's words into subtitle cues (start, end, text); cues
    never span a VAD segment boundary."""
    if result.segments:
        out = []
        for a, b, _ in result.segments:
            part = [w for w in result.words if a <= w.start < b]
            out += _word_cues(part)
        return out
    out = _word_cues(result.words)
    if not out and result.text:
        out.append((0.0, result.duration or 0.0, result.text))
    return out


def _word_cues(words: list) -> list[tuple[float, float, str]]:
    out: list[tuple[float, float, str]] = []
    cur: list = []
    for w in words:
        if cur:
            text = " ".join(x.text for x in cur + [w])
            if (
                w.start - cur[-1].end > CUE_PAUSE_SECONDS
                or w.end - cur[0].start > CUE_MAX_SECONDS
                or len(text) > CUE_MAX_CHARS
            ):
                out.append((cur[0].start, cur[-1].end, " ".join(x.text for x in cur)))
                cur = []
        cur.append(w)
    if cur:
        out.append((cur[0].start, cur[-1].end, " ".join(x.text for x in cur)))
    return out


def _ts(t: float, sep: str) -> str:
    ms = max(0, int(round(t * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


class SrtWriter(Writer):
    def write(self, result: Result) -> None:
        if not result.ok:
            return
        for i, (a, b, text) in enumerate(cues(result), 1):
            self.out.write(f"{i}\n{_ts(a, ',')} --> {_ts(b, ',')}\n{text}\n\n")


class VttWriter(Writer):
    def write(self, result: Result) -> None:
        if not result.ok:
            return
        self.out.write("WEBVTT\n\n")
        for a, b, text in cues(result):
            self.out.write(f"{_ts(a, '.')} --> {_ts(b, '.')}\n{text}\n\n")


_CLASSES = {
    "txt": TxtWriter,
    "tsv": TsvWriter,
    "jsonl": JsonlWriter,
    "json": JsonWriter,
    "srt": SrtWriter,
    "vtt": VttWriter,
}


def make_writer(fmt: str, out: TextIO, words: bool = False, nbest: bool = False) -> Writer:
    return _CLASSES[fmt](out, words=words, nbest=nbest)
