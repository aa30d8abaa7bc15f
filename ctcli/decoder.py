"""CTC decoding: greedy, and prefix beam search fused with a KenLM language model.

Public API (used by the CLI and the benchmarks)::

    from ctcli.decoder import build_decoder, greedy_decode
    dec = build_decoder(labels, blank=0, lm="lm/en-4gram.arpa", beam_width=32)
    r = dec.decode(log_probs)          # float32 [T, V], natural-log posteriors
    r.text, r.score, r.conf, r.words, r.nbest

Scores. A prefix ``y`` is ranked by::

    ln P_ctc(y | x) + alpha * ln P_lm(y) + beta * words(y) + hotword bonus(y)

``P_ctc`` sums over alignments (blank / non-blank split per prefix). With a
word LM, ``ln P_lm`` is the sum of KenLM's scores of the completed words plus,
for the unfinished last word, a look-ahead: the best unigram ln-probability
of any vocabulary word that starts with it (a prefix trie over the unigrams,
"max-smeared"). A partial word that leaves the trie is out of vocabulary; it
is kept (open vocabulary) and costs ``oov_score + oov_char_score * letters``
instead of a word score (the look-ahead of an OOV partial is the same
expression for the letters so far).
At the end the last word is completed and ``ln P(</s>)`` added. With a char
LM every label is a token (" " is :data:`ctcli.lm.CHAR_LM_SPACE`) and beta is
a bonus per label.

Blank penalty. ``blank_penalty`` nats are taken from the blank's
ln-probability in every frame of the search (``acoustic_score`` includes
them; confidences and word times read the model's own posteriors, and so
does the blank-skip pruning). Every word costs LM probability, so a fused
search leans towards fewer words and letters, most where the acoustic
posteriors are unsure; a positive penalty counters that (fewer deletions),
a negative one does the opposite. Greedy decoding is the model's plain best
path and ignores it.

Confidence. Each output label is aligned to frames by the most probable CTC
alignment of the final text (Viterbi). A label's confidence is its peak
posterior over its frames; a word's confidence is the *minimum* over its
labels (a word is as sure as its least sure letter); the utterance's
confidence ``conf`` is the geometric mean of its words' confidences (for an
empty text: the geometric mean of the blank posteriors). All lie in [0, 1].

Hotwords. Words or phrases with a boost (natural-log units). They sit in a
character trie; a prefix that follows a hotword from a word start gets the
boost in proportion of the characters matched so far, the full boost when the
phrase ends at a word boundary, and loses the provisional part when it leaves
the trie. The cost per step is one table look-up, whatever the number of
hotwords.

Every default lives in :data:`DEFAULTS` / :class:`PruningOptions` below.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ctcli.alphabet import Alphabet, collapse
from ctcli.errors import DecoderInputError

if TYPE_CHECKING:
    from ctcli._search import Decoder, Stream

# ---------------------------------------------------------------------------
# Defaults: every one in one place.
# ---------------------------------------------------------------------------
DEFAULT_BEAM_WIDTH = 32  # prefixes kept per frame
DEFAULT_ALPHA_WORD = 0.3  # word LM weight (tuned on bench/decoder.py dev sentences)
DEFAULT_BETA_WORD = 1.5  # bonus per completed word, nats (tuned with alpha)
DEFAULT_ALPHA_CHAR = 0.3  # char LM weight
DEFAULT_BETA_CHAR = 0.0  # bonus per emitted label with a char LM
DEFAULT_OOV_SCORE = -10.0  # ln-score of an out-of-vocabulary word (word LM), plus:
DEFAULT_OOV_CHAR_SCORE = -2.0  # ln-score per letter of an out-of-vocabulary word
DEFAULT_BLANK_PENALTY = 0.0  # nats taken from ln P(blank) per frame in the search
DEFAULT_HOTWORD_BOOST = 5.0  # nats added when a hotword is recognised
DEFAULT_N_BEST = 1
MAX_BATCH_JOBS = 64
LM_CACHE_MAX = 1 << 21  # cached LM scores kept across utterances before the cache is cleared


@dataclass(frozen=True)
class PruningOptions:
    """Search pruning. The defaults cost almost no accuracy (see bench/decoder.py).

    Attributes:
        beam_threshold: Drop prefixes scoring more than this many nats below
            the frame's best prefix.
        cutoff_prob: Per frame, only the most probable labels whose cumulative
            probability (with the blank's) reaches this are tried as extensions.
        cutoff_top_n: At most this many labels are tried per frame.
        token_min_logp: Labels below this log-probability are never tried.
        blank_skip_prob: Frames whose blank probability is at least this only
            carry the beam forward (blank and repeats), creating no prefixes.
            Set > 1 to disable.
    """

    beam_threshold: float = 25.0
    cutoff_prob: float = 0.999
    cutoff_top_n: int = 16
    token_min_logp: float = -5.0
    blank_skip_prob: float = 0.999

    @classmethod
    def exhaustive(cls) -> PruningOptions:
        """No pruning beyond the beam width (for tests and references)."""
        return cls(math.inf, 2.0, 1 << 30, -math.inf, 2.0)


DEFAULTS = PruningOptions()
_PRUNING_NAMES = {f.name for f in fields(PruningOptions)}


# ---------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class WordSpan:
    """A word with its frames (end exclusive) and confidence in [0, 1]."""

    text: str
    start: int
    end: int
    conf: float


@dataclass(frozen=True)
class Hypothesis:
    """One n-best entry. ``score = acoustic_score + lm_score`` (+ hotword bonus).

    ``lm_score`` is the weighted LM term ``alpha * ln P_lm + beta * words``.
    """

    text: str
    score: float
    acoustic_score: float
    lm_score: float


@dataclass(frozen=True)
class DecodeResult:
    text: str
    score: float
    conf: float
    words: list[WordSpan] = field(default_factory=list)
    nbest: list[Hypothesis] = field(default_factory=list)
    labels: tuple[int, ...] = ()  # label ids of the best text


# ---------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------
def check_log_probs(
    log_probs: Any, vocab_size: int | None = None, *, allow_empty: bool = False
) -> np.ndarray:
    """Validate decoder input and return it as a C-contiguous float32 array.

    Raises:
        DecoderInputError: not a 2-D float array, T = 0, NaN or +inf,
            probabilities or unnormalised scores instead of log-probabilities,
            or a vocabulary size that does not match the alphabet.
    """
    if hasattr(log_probs, "detach"):  # torch tensor
        log_probs = log_probs.detach().cpu().numpy()
    try:
        x = np.asarray(log_probs)
    except Exception as e:
        raise DecoderInputError(f"log_probs is not an array: {e}") from e
    if x.dtype == object or not (np.issubdtype(x.dtype, np.floating)):
        raise DecoderInputError(f"log_probs must be a float array, got dtype {x.dtype}")
    if x.ndim != 2:
        raise DecoderInputError(f"log_probs must be 2-D [T, V], got shape {tuple(x.shape)}")
    if vocab_size is not None and x.shape[1] != vocab_size:
        raise DecoderInputError(
            f"log_probs has {x.shape[1]} classes but the alphabet has {vocab_size} labels"
        )
    if x.shape[0] == 0:
        if allow_empty:
            return np.zeros((0, x.shape[1]), np.float32)
        raise DecoderInputError("log_probs has no frames (T = 0)")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if np.isnan(x).any():
        raise DecoderInputError("log_probs contains NaN")
    mx = float(x.max())
    if mx == math.inf:
        raise DecoderInputError("log_probs contains +inf")
    if float(x.min()) >= 0.0:
        raise DecoderInputError(
            "log_probs looks like probabilities (all values >= 0); pass natural-log "
            "posteriors (np.log or log_softmax)"
        )
    if mx > 1e-3:
        raise DecoderInputError(
            f"log_probs has positive values (max {mx:.3g}): logits? apply log_softmax first"
        )
    m = x.max(axis=1, keepdims=True)
    lse = np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]
    bad = float(np.abs(lse).max())
    if bad > 0.05:
        raise DecoderInputError(
            f"log_probs rows are not normalised (|logsumexp| up to {bad:.3g}); "
            "pass log_softmax output"
        )
    return x


# ---------------------------------------------------------------------------
# Words and confidence from an alignment
# ---------------------------------------------------------------------------
def _words_from_spans(
    alphabet: Alphabet, ids: Sequence[int], starts, ends, peaks
) -> tuple[list[WordSpan], float]:
    space = alphabet.space
    words: list[WordSpan] = []
    cur: list[int] = []

    def flush() -> None:
        if cur:
            text = "".join(alphabet.labels[ids[k]] for k in cur)
            conf = float(math.exp(min(float(peaks[k]) for k in cur)))
            words.append(WordSpan(text, int(starts[cur[0]]), int(ends[cur[-1]]), min(1.0, conf)))
            cur.clear()

    for k, i in enumerate(ids):
        if i == space:
            flush()
        else:
            cur.append(k)
    flush()
    if words:
        conf = math.exp(sum(math.log(max(w.conf, 1e-300)) for w in words) / len(words))
    else:
        conf = 1.0
    return words, min(1.0, conf)


def _empty_conf(lp: np.ndarray, blank: int) -> float:
    if lp.shape[0] == 0:
        return 1.0
    return float(min(1.0, math.exp(float(np.mean(lp[:, blank], dtype=np.float64)))))


def greedy_decode(log_probs: Any, labels: Sequence[str] | Alphabet, blank: int = 0) -> DecodeResult:
    """Best path decoding: argmax per frame, merge repeats, drop blanks.

    ``score`` is the log-probability of the best path; words and confidences
    follow the module's definitions with the best path as the alignment.
    """
    alphabet = labels if isinstance(labels, Alphabet) else Alphabet.from_labels(labels, blank)
    lp = check_log_probs(log_probs, alphabet.size)
    path = lp.argmax(axis=1)
    score = float(lp[np.arange(lp.shape[0]), path].sum(dtype=np.float64))
    ids, starts, ends = collapse(path, alphabet.blank)
    peaks = [float(lp[s:e, i].max()) for i, s, e in zip(ids.tolist(), starts, ends, strict=True)]
    text = alphabet.text(ids)
    words, conf = _words_from_spans(alphabet, ids.tolist(), starts, ends, peaks)
    if not ids.size:
        conf = _empty_conf(lp, alphabet.blank)
    return DecodeResult(
        text=text,
        score=score,
        conf=conf,
        words=words,
        nbest=[Hypothesis(text, score, score, 0.0)],
        labels=tuple(ids.tolist()),
    )


# ---------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------
def blank_penalty_for(given: float | None, stored: float | None, with_lm: bool) -> float:
    """The penalty a search uses: the one given, else the model's stored one
    when an LM is fused (it was tuned with one; without an LM it would only add
    letters), else none."""
    if given is not None:
        return float(given)
    return float(stored or 0.0) if with_lm else 0.0


def search_for(given_beam: int | None, meta: dict) -> dict:
    """build_decoder keywords for a model's stored search: the beam width
    given, else the model's (`registry install --beam`), else the default;
    and its stored pruning (`--token-min-logp`, `--beam-threshold`)."""
    beam = given_beam if given_beam is not None else int(meta.get("beam", DEFAULT_BEAM_WIDTH))
    return {"beam_width": beam, **meta.get("pruning", {})}


def build_decoder(
    labels: Sequence[str],
    blank: int = 0,
    lm: str | os.PathLike | None = None,
    alpha: float | None = None,
    beta: float | None = None,
    beam_width: int = DEFAULT_BEAM_WIDTH,
    unigrams: Sequence[str] | str | os.PathLike | None = None,
    hotwords: Sequence[str | tuple[str, float]] | None = None,
    lm_unit: str = "word",
    n_best: int = DEFAULT_N_BEST,
    oov_score: float = DEFAULT_OOV_SCORE,
    oov_char_score: float = DEFAULT_OOV_CHAR_SCORE,
    lm_sentence: bool = True,
    blank_penalty: float = DEFAULT_BLANK_PENALTY,
    **pruning_options: Any,
) -> Decoder:
    """Build a CTC prefix beam search decoder.

    Args:
        labels: Output symbols by index; " " is the word separator.
        blank: Index of the CTC blank.
        lm: ARPA or KenLM binary file, or None for no LM.
        alpha: LM weight (default by unit: DEFAULT_ALPHA_WORD / _CHAR).
        beta: Word bonus (word LM) or per-label bonus (char LM), nats.
        beam_width: Prefixes kept per frame.
        unigrams: The LM's vocabulary (list, word-per-line file, or ARPA) for
            the look-ahead trie; read from an ARPA LM or from
            ``<lm>.unigrams.txt`` when None.
        hotwords: Words / phrases, optionally with a boost in nats
            (default DEFAULT_HOTWORD_BOOST).
        lm_unit: "word" or "char".
        n_best: Hypotheses returned in ``nbest``.
        oov_score: ln-score of an out-of-vocabulary word (word LM), to which
            ``oov_char_score`` is added per letter: long made-up words cost
            more, so the search does not glue words together to save costs.
        lm_sentence: the text is a whole sentence: the LM starts at ``<s>``
            and ``ln P(</s>)`` is added at the end. False for text that
            starts and ends anywhere in a sentence (a printed line cut from a
            page): no start context and no end-of-sentence term, so the LM
            does not push a line's first letter to a capital or its last
            comma to a period.
        blank_penalty: nats taken from the blank's ln-probability in every
            frame of the search (see the module docstring); 0 = none.
        **pruning_options: Fields of :class:`PruningOptions`.

    Raises:
        DecoderInputError: bad labels / options.
        LMLoadError: the LM or its unigrams cannot be loaded.
    """
    from ctcli._search import Decoder, _Config

    unknown = set(pruning_options) - _PRUNING_NAMES
    if unknown:
        raise DecoderInputError(f"unknown decoder options: {', '.join(sorted(unknown))}")
    pruning = replace(DEFAULTS, **pruning_options)
    if lm is not None and str(lm).lower() in ("", "none"):
        lm = None
    if isinstance(unigrams, os.PathLike):
        unigrams = os.fspath(unigrams)
    cfg = _Config(
        labels=tuple(labels),
        blank=int(blank),
        lm=os.fspath(lm) if lm is not None else None,
        alpha=alpha,
        beta=beta,
        beam_width=int(beam_width),
        unigrams=tuple(unigrams) if isinstance(unigrams, (list, tuple)) else unigrams,
        hotwords=tuple(hotwords) if hotwords else None,
        lm_unit=lm_unit,
        n_best=int(n_best),
        pruning=pruning,
        oov_score=float(oov_score),
        oov_char_score=float(oov_char_score),
        lm_sentence=bool(lm_sentence),
        blank_penalty=float(blank_penalty),
    )
    return Decoder(cfg)


__all__ = [
    "DEFAULTS",
    "DEFAULT_ALPHA_CHAR",
    "DEFAULT_ALPHA_WORD",
    "DEFAULT_BEAM_WIDTH",
    "DEFAULT_BLANK_PENALTY",
    "DEFAULT_BETA_CHAR",
    "DEFAULT_BETA_WORD",
    "DEFAULT_HOTWORD_BOOST",
    "DEFAULT_OOV_SCORE",
    "blank_penalty_for",
    "DecodeResult",
    "Decoder",
    "Hypothesis",
    "PruningOptions",
    "Stream",
    "WordSpan",
    "build_decoder",
    "check_log_probs",
    "greedy_decode",
]


def __getattr__(name: str):
    # Decoder / Stream live in ctcli._search (imports numba): load on first use.
    if name in ("Decoder", "Stream"):
        from ctcli import _search

        return getattr(_search, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
