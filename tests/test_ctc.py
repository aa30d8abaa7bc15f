"""CTC forward-backward reference: torch.nn.CTCLoss and brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ctcli._beam_ref import ctc_backward, ctc_forward, ctc_log_likelihood
from ctcli.alphabet import collapse


def rand_lp(rng, T, V, scale=2.0):
    x = rng.normal(size=(T, V)) * scale
    return (x - np.log(np.exp(x).sum(1, keepdims=True))).astype(np.float64)


def brute_force(lp, blank=0):
    """ln P of every labelling, summing over all V^T alignments."""
    T, V = lp.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(V), repeat=T):
        ids, _, _ = collapse(np.array(path), blank)
        s = float(sum(lp[t, c] for t, c in enumerate(path)))
        k = tuple(ids.tolist())
        out[k] = np.logaddexp(out.get(k, -math.inf), s)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_forward_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    T, V = 5, 3
    lp = rand_lp(rng, T, V)
    bf = brute_force(lp)
    # probabilities of all labellings sum to 1
    assert math.isclose(np.logaddexp.reduce(list(bf.values())), 0.0, abs_tol=1e-9)
    for lab, ll in bf.items():
        assert ctc_log_likelihood(lp, lab) == pytest.approx(ll, abs=1e-9)
    assert ctc_log_likelihood(lp, (1, 1, 1, 1)) == -math.inf  # needs T >= 7


def test_forward_backward_consistent():
    rng = np.random.default_rng(7)
    lp = rand_lp(rng, 9, 4)
    lab = [1, 2, 2, 3]
    a = ctc_forward(lp, lab)
    b = ctc_backward(lp, lab)
    ll = ctc_log_likelihood(lp, lab)
    # at every frame, sum_s alpha*beta / y = P(l | x)
    ext = [0, 1, 0, 2, 0, 2, 0, 3, 0]
    for t in range(lp.shape[0]):
        tot = np.logaddexp.reduce([a[t, s] + b[t, s] - lp[t, ext[s]] for s in range(len(ext))])
        assert tot == pytest.approx(ll, abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_forward_matches_torch_ctc_loss(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(100 + seed)
    T, V = 12, 6
    lp = rand_lp(rng, T, V)
    labs = [[1, 2, 3], [4, 4, 5, 1], [2]]
    loss = torch.nn.CTCLoss(blank=0, reduction="none")
    for lab in labs:
        ours = -ctc_log_likelihood(lp, lab)
        x = torch.tensor(lp, dtype=torch.float64).unsqueeze(1)  # T x 1 x V
        theirs = loss(x, torch.tensor([lab]), torch.tensor([T]), torch.tensor([len(lab)]))
        assert ours == pytest.approx(float(theirs[0]), rel=1e-9, abs=1e-9)


def test_forward_other_blank_index():
    rng = np.random.default_rng(3)
    lp = rand_lp(rng, 5, 3)
    bf = brute_force(lp, blank=2)
    for lab, ll in bf.items():
        assert ctc_log_likelihood(lp, lab, blank=2) == pytest.approx(ll, abs=1e-9)
