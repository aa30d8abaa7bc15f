"""A tiny parser and checker for recognised arithmetic captchas.

Grammar (integers only, usual precedence, ``*`` binds tighter than ``+ -``)::

    check   := expr '=' result
    expr    := term (('+' | '-') term)*
    term    := factor ('*' factor)*
    factor  := number | '(' expr ')'
    number  := '0' | [1-9][0-9]*          (no sign, no leading zeros)
    result  := '-'? number

Recognised text is never handed to Python's ``eval``: this module tokenises
and evaluates it itself, with limits on length, nesting and number size.
"""

from __future__ import annotations

MAX_LEN = 256  # characters accepted by the checker
MAX_DEPTH = 32  # parenthesis nesting
MAX_DIGITS = 12  # per number


class ExprError(ValueError):
    """The text is not a well-formed expression."""


class _Parser:
    def __init__(self, s: str):
        self.s = s
        self.i = 0
        self.depth = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def number(self) -> int:
        s, j = self.s, self.i
        i, n = j, len(s)
        while i < n and s[i] in "0123456789":
            i += 1
        self.i = i
        digits = s[j:i]
        if not digits:
            raise ExprError(f"expected a number at {j}")
        if len(digits) > 1 and digits[0] == "0":
            raise ExprError(f"leading zero at {j}")
        if len(digits) > MAX_DIGITS:
            raise ExprError("number too long")
        return int(digits)

    def factor(self) -> int:
        if self.peek() == "(":
            self.i += 1
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExprError("nesting too deep")
            v = self.expr()
            if self.peek() != ")":
                raise ExprError(f"expected ')' at {self.i}")
            self.i += 1
            self.depth -= 1
            return v
        return self.number()

    def term(self) -> int:
        v = self.factor()
        while self.peek() == "*":
            self.i += 1
            v *= self.factor()
        return v

    def expr(self) -> int:
        v = self.term()
        while self.peek() in ("+", "-") and self.peek():
            op = self.peek()
            self.i += 1
            t = self.term()
            v = v + t if op == "+" else v - t
        return v


def evaluate_expression(expr: str) -> int:
    """Value of an expression without ``=``; raises ExprError if malformed."""
    if not isinstance(expr, str) or not expr or len(expr) > MAX_LEN:
        raise ExprError("empty or too long")
    p = _Parser(expr)
    v = p.expr()
    if p.i != len(expr):
        raise ExprError(f"unexpected {expr[p.i]!r} at {p.i}")
    return v


def parse_result(text: str) -> int:
    """The stated result: ``'-'? number``; raises ExprError if malformed."""
    neg = text.startswith("-")
    p = _Parser(text[1:] if neg else text)
    v = p.number()
    if p.i != len(p.s):
        raise ExprError("malformed result")
    return -v if neg else v


def parse_and_check(text: str) -> bool:
    """True iff ``text`` is ``expr=result``, well-formed, and the result is right."""
    if not isinstance(text, str) or len(text) > MAX_LEN or text.count("=") != 1:
        return False
    lhs, rhs = text.split("=")
    try:
        return evaluate_expression(lhs) == parse_result(rhs)
    except ExprError:
        return False


def pick_valid(hyps: list[str]) -> str:
    """First hypothesis (best first) that passes :func:`parse_and_check`, else the first."""
    for h in hyps:
        if parse_and_check(h):
            return h
    return hyps[0] if hyps else ""


def split_result(text: str) -> tuple[str, str] | None:
    """``'lhs=rhs'`` -> (lhs, rhs), or None without exactly one ``=``."""
    if text.count("=") != 1:
        return None
    lhs, rhs = text.split("=")
    return lhs, rhs


def candidates(hyps: list[str]) -> list[str]:
    """Well-formed, correct expressions suggested by recognised hypotheses.

    Each hypothesis that checks is a candidate; so is each well-formed left-hand
    side with its computed result (the image decides, by likelihood, whether the
    result or the left-hand side was misread).
    """
    out: dict[str, None] = {}
    values: dict[str, int | None] = {}  # n-best lists repeat left-hand sides: parse each once
    for h in hyps:
        parts = split_result(h)
        lhs = parts[0] if parts else h
        if lhs not in values:
            try:
                values[lhs] = evaluate_expression(lhs)
            except ExprError:
                values[lhs] = None
        v = values[lhs]
        if v is None:
            continue
        if parts and len(h) <= MAX_LEN:  # the hypothesis itself, when its result is right
            try:
                if parse_result(parts[1]) == v:
                    out[h] = None
            except ExprError:
                pass
        out[f"{lhs}={v}"] = None
    return list(out)


def ctc_log_likelihood(log_probs, label_ids: list[int], blank: int) -> float:
    """ln P(labels | log_probs) summed over all CTC alignments (the forward
    algorithm, compiled: ctcli._beam.ctc_label_likelihood).

    log_probs: [T, V] natural-log posteriors. Returns -inf when T is too short.
    """
    import numpy as np

    from ctcli._beam import ctc_label_likelihood

    lp = np.ascontiguousarray(log_probs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] == 0:
        return float("-inf") if label_ids else 0.0
    return float(ctc_label_likelihood(lp, np.asarray(label_ids, dtype=np.int64), int(blank)))


def rescore(log_probs, hyps: list[str], labels: list[str], blank: int) -> str:
    """The most likely (under the CTC posteriors) correct expression among
    :func:`candidates` of ``hyps``; ``hyps[0]`` when none is valid."""
    cands = candidates(hyps)
    if not cands:
        return hyps[0] if hyps else ""
    index = {c: i for i, c in enumerate(labels) if i != blank}
    best, best_ll = None, -float("inf")
    for c in cands:
        if any(ch not in index for ch in c):
            continue
        ll = ctc_log_likelihood(log_probs, [index[ch] for ch in c], blank)
        if ll > best_ll:
            best, best_ll = c, ll
    return best if best is not None else (hyps[0] if hyps else "")
