"""Every user-facing default in one place, as frozen dataclasses.

Decoder search defaults (pruning thresholds etc.) live beside the search in
`ctcli.decoder`; these are the run-level settings the CLI fills in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_BEAM = 32  # prefix beam width, for a model whose checkpoint names none
# Endpointing: this much silence ends an utterance. 0.25 s keeps the final
# line within 400 ms of the end of speech with 100 ms audio blocks.
DEFAULT_MIN_SILENCE_S = 0.25
DEFAULT_FORMAT = "txt"  # output format
DEFAULT_BATCH = 16  # inputs prepared and run through the model together
EXPR_RERANK_NBEST = 16  # hypotheses searched for a well-formed, correct expression


@dataclass(frozen=True)
class TranscribeOptions:
    model: str | None = None  # NAME|PATH; None = bundled default for each input kind
    lm: str | None = None  # NAME|PATH|"none"; None = the model's default LM
    alpha: float | None = None  # LM weight; None = the model card's tuned value
    beta: float | None = None  # word bonus; None = the model card's tuned value
    blank_penalty: float | None = None  # nats off ln P(blank) in the search; None = the card's
    beam: int | None = None  # beam width; None = the model card's, else DEFAULT_BEAM
    greedy: bool = False  # best-path decoding, no beam, no LM
    n_best: int = 1  # hypotheses kept per input (jsonl/json show them when > 1)
    hotwords: tuple[tuple[str, float], ...] = ()  # (phrase, boost)
    words: bool = False  # per-word start/end/conf in the output
    fmt: str = DEFAULT_FORMAT  # txt|tsv|jsonl|json|srt|vtt
    device: str = "auto"  # auto|cpu|cuda|cuda:N
    jobs: int = 0  # CPU threads/processes; 0 = library defaults
    batch_size: int = DEFAULT_BATCH  # inputs per model batch
    output_dir: Path | None = None  # -o DIR: one file per input
    skip_existing: bool = False  # with -o: leave inputs whose output exists
