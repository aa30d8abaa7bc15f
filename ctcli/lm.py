"""KenLM language models for CTC decoding: loading, unigrams, cached scoring.

``kenlm`` (from the ``ufal-kenlm`` wheel) is imported only when a model is
loaded, so decoding without an LM works without it.

Two units:

* ``"word"``: tokens are words, i.e. runs of labels between " " labels.
* ``"char"``: every output label is one LM token; the word separator " " is
  the token :data:`CHAR_LM_SPACE` (``"<sp>"``, as written by
  ``ctcli lm build --unit char``).

Scores are natural logs (KenLM's log10 times ln 10). LM states are interned:
each distinct KenLM state gets a small integer id, so the decoder's score
cache can key on (state id, token id).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ctcli.errors import LMLoadError

LN10 = math.log(10.0)
CHAR_LM_SPACE = "<sp>"  # char-level LM token for " " (ctcli.lmbuild.SPACE_TOKEN)
UNK = "<unk>"
SPECIAL = frozenset({"<s>", "</s>", "<unk>", "<UNK>"})


def _import_kenlm():
    try:
        import kenlm  # type: ignore[import-not-found]
    except ImportError as e:  # pragma: no cover - kenlm is a dependency
        raise LMLoadError(
            "the 'kenlm' module is needed for language models (pip install ufal-kenlm)"
        ) from e
    return kenlm


def is_arpa(path: str | Path) -> bool:
    """True when the file looks like ARPA text (starts with a \\data\\ section)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return b"\\data\\" in head.lstrip()[:64]


def read_arpa_unigrams(path: str | Path) -> list[str]:
    """Words of the \\1-grams section of an ARPA file (special tokens excluded)."""
    words: list[str] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            in_uni = False
            for line in f:
                s = line.strip()
                if not in_uni:
                    if s == "\\1-grams:":
                        in_uni = True
                    continue
                if not s:
                    continue
                if s.startswith("\\"):
                    break
                parts = s.split("\t")
                if len(parts) < 2:
                    parts = s.split()
                if len(parts) >= 2 and parts[1] not in SPECIAL:
                    words.append(parts[1])
    except OSError as e:
        raise LMLoadError(f"cannot read unigrams from {path}: {e}") from e
    return words


def load_unigrams(src: Sequence[str] | str | Path) -> list[str]:
    """Unigrams from a list, a word-per-line file, or an ARPA file."""
    if isinstance(src, (str, Path)):
        p = Path(src)
        if not p.is_file():
            raise LMLoadError(f"unigram file not found: {p}")
        if is_arpa(p):
            return read_arpa_unigrams(p)
        try:
            with open(p, encoding="utf-8") as f:
                return [w for w in (line.strip() for line in f) if w and w not in SPECIAL]
        except (OSError, UnicodeDecodeError) as e:
            raise LMLoadError(f"cannot read unigram file {p}: {e}") from e
    return [str(w) for w in src if str(w) and str(w) not in SPECIAL]


def _quiet(fn):
    """Run fn with the C-level stderr silenced (KenLM prints loading chatter there)."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover
        return fn()
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                return fn()
            finally:
                os.dup2(fd, 2)
    finally:
        os.close(fd)


class KenLM:
    """A KenLM model with interned states and natural-log scores.

    Args:
        path: ARPA or KenLM binary file.
        sentence: state 0 (where every search starts) is the sentence start
            ``<s>``; False: no context at all, for text that starts anywhere
            in a sentence (a line cut from a page).

    Raises:
        LMLoadError: the file is missing or KenLM cannot load it.
    """

    def __init__(self, path: str | Path, sentence: bool = True) -> None:
        p = Path(path)
        if not p.is_file():
            raise LMLoadError(f"language model not found: {p}")
        kenlm = _import_kenlm()
        try:
            config = kenlm.Config()
            config.show_progress = False
            self.model = _quiet(lambda: kenlm.Model(os.fspath(p), config))
        except Exception as e:  # kenlm raises OSError / RuntimeError / its own types
            msg = " ".join(str(e).split())[:300]
            raise LMLoadError(f"cannot load language model {p}: {msg}") from e
        self.path = p
        self.order = int(self.model.order)
        self._kenlm = kenlm
        bos = kenlm.State()
        self.model.BeginSentenceWrite(bos)
        self._null = kenlm.State()
        self.model.NullContextWrite(self._null)
        start = bos if sentence else self._null
        self.states: list = [start]  # id -> kenlm.State; id 0 is the start
        self._ids: dict = {start: 0}

    def __getstate__(self):  # pragma: no cover - worker processes reload by path
        raise TypeError("KenLM objects are not pickled; reload the model from its path")

    def _intern(self, st) -> int:
        i = self._ids.get(st)
        if i is None:
            i = len(self.states)
            self.states.append(st)
            self._ids[st] = i
        return i

    def score(self, state_id: int, token: str) -> tuple[float, int]:
        """ln P(token | state) and the id of the state after it."""
        out = self._kenlm.State()
        s = self.model.BaseScore(self.states[state_id], token, out)
        return s * LN10, self._intern(out)

    def end_score(self, state_id: int) -> float:
        """ln P(</s> | state)."""
        out = self._kenlm.State()
        return self.model.BaseScore(self.states[state_id], "</s>", out) * LN10

    def unigram_score(self, word: str) -> float:
        out = self._kenlm.State()
        return self.model.BaseScore(self._null, word, out) * LN10

    def unigram_scores(self, words: Sequence[str], oov: float) -> np.ndarray:
        """ln P(word) with no context for each word; ``oov`` for words not in the LM."""
        model, null, out = self.model, self._null, self._kenlm.State()
        base = model.BaseScore
        return np.array(
            [base(null, w, out) * LN10 if w in model else oov for w in words], np.float64
        )

    def in_vocab(self, word: str) -> bool:
        return word in self.model

    def resolve(
        self, keys: np.ndarray, keymul: int, tokens: Sequence[str], override: dict[int, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores for cache keys ``state * keymul + token``.

        ``override`` maps token ids to a fixed score (the OOV cost), used
        instead of KenLM's, while the next state still comes from KenLM.
        """
        keys = np.unique(keys)
        scores = np.empty(keys.shape[0], np.float64)
        nexts = np.empty(keys.shape[0], np.int32)
        for j, key in enumerate(keys.tolist()):
            st, tok = divmod(key, keymul)
            s, nx = self.score(st, tokens[tok])
            fixed = override.get(tok)
            scores[j] = s if fixed is None else fixed
            nexts[j] = nx
        return keys, scores, nexts


def unigram_table(lm: KenLM, words: Iterable[str]) -> dict[str, float]:
    """word -> ln P(word) with no context (KenLM's unigram estimate)."""
    return {w: lm.unigram_score(w) for w in words}


def find_unigrams_file(lm_path: str | Path) -> Path | None:
    """The ``<stem>.unigrams.txt`` next to an LM file, if there is one."""
    p = Path(lm_path)
    for cand in (p.with_suffix(".unigrams.txt"), p.parent / (p.name + ".unigrams.txt")):
        if cand.is_file():
            return cand
    return None
