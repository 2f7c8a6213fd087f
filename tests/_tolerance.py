"""Tolerances for numbers computed on another machine, derived rather than guessed.

Two CPUs compute the same float32 distance matrix with different rounding (summation order,
FMA, AVX2 / AVX-512 / AMX kernels). Near-tied gallery entries can then swap places, which moves
rank-k and mAP. Instead of a bare ``abs=1e-6``, the helpers here bound how far every distance can
have moved and turn that bound into an interval for each metric:

* :func:`cosine_slack` / :func:`euclidean_slack` give, per (query, gallery) pair, a bound on
  ``|d_here - d_there|``: the rounding of both computations (the standard dot-product error bound
  ``gamma_n * sum|x_i y_i|`` with ``gamma_n = n u / (1 - n u)``, ``u = 2**-24``, which holds for
  any summation order) plus, when the features themselves differ, the exact effect of that
  difference on the distance.
* :func:`metric_interval` evaluates the matrix twice: once with every true match pushed *away*
  by its slack and every false match pulled *closer* (the worst case), once the other way round
  (the best case). Rank-k, AP and INP depend only on which false matches precede which true
  matches, and that relation can only grow from the best case to the worst, so any matrix within
  the slack -- the one the other machine computed included -- gives metrics inside the interval.

The interval is as wide as the near-ties in the data make it and no wider; tests also assert that
it is narrow, so a wrong model or evaluator still falls outside it.
"""

from __future__ import annotations

import numpy as np

from omnireid.evaluation import evaluate_rank
from omnireid.evaluation.rank import RankResult

U32 = 2.0**-24  # unit roundoff of float32


def gamma(n: int) -> float:
    """The dot-product rounding constant gamma_n = n u / (1 - n u) for float32 (Higham, Accuracy
    and Stability of Numerical Algorithms, 2nd ed., section 3.1): for any summation order,
    |fl(x . y) - x . y| <= gamma_n * sum |x_i y_i|."""
    return n * U32 / (1 - n * U32)


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cosine_slack(q: np.ndarray, g: np.ndarray, q_other: np.ndarray | None = None,
                 g_other: np.ndarray | None = None) -> np.ndarray:
    """(Q, G) bound on how far two float32 computations of ``1 - <q/|q|, g/|g|>`` can differ.

    Rounding: each side's normalisation (relative error <= gamma_n / 2 + 2u per element) and dot
    product (gamma_n * sum|x_i y_i|), for both machines. Feature difference (``*_other`` given):
    ``|<a,b> - <a',b'>| <= |a - a'| + |b - b'|`` for unit vectors (Cauchy-Schwarz).
    """
    n = q.shape[1]
    qa, ga = np.abs(_unit(q)), np.abs(_unit(g))
    one_side = (2 * gamma(n) + 6 * U32) * (qa @ ga.T) + 2 * U32
    slack = 2 * one_side
    if q_other is not None and g_other is not None:
        dq = np.linalg.norm(_unit(q) - _unit(q_other), axis=1)
        dg = np.linalg.norm(_unit(g) - _unit(g_other), axis=1)
        slack = slack + dq[:, None] + dg[None, :]
    return slack


def euclidean_slack(q: np.ndarray, g: np.ndarray, q_other: np.ndarray | None = None,
                    g_other: np.ndarray | None = None) -> np.ndarray:
    """(Q, G) bound on how far two float32 computations of ``|q|^2 + |g|^2 - 2 <q, g>`` can differ.

    Rounding: the three sums of n products and the two additions, ``gamma_(n+2)`` times the sum
    of the absolute terms, for both machines. Feature difference: with ``e = |q - q'| + |g - g'|``,
    ``| |q-g|^2 - |q'-g'|^2 | <= e * (2 |q - g| + e)``.
    """
    n = q.shape[1]
    q64, g64 = q.astype(np.float64), g.astype(np.float64)
    terms = (q64**2).sum(1)[:, None] + (g64**2).sum(1)[None, :] + 2 * (np.abs(q64) @ np.abs(g64).T)
    slack = 2 * gamma(n + 2) * terms
    if q_other is not None and g_other is not None:
        e = (np.linalg.norm(q64 - q_other, axis=1)[:, None]
             + np.linalg.norm(g64 - g_other, axis=1)[None, :])
        dist = np.sqrt(np.maximum((q64**2).sum(1)[:, None] + (g64**2).sum(1)[None, :]
                                  - 2 * q64 @ g64.T, 0))
        slack = slack + e * (2 * dist + e)
    return slack


def metric_interval(
    distmat: np.ndarray,
    slack: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    **kwargs,
) -> tuple[RankResult, RankResult]:
    """(worst, best) metrics over every distance matrix within ``slack`` of ``distmat``.

    ``kwargs`` go to :func:`omnireid.evaluation.evaluate_rank` (protocol, arithmetic, ...). The
    slack is widened by one part in a million so that exact ties after shifting cannot decide.
    """
    d = np.asarray(distmat, np.float64)
    s = np.asarray(slack, np.float64) * (1 + 1e-6) + 1e-12
    match = np.asarray(q_pids)[:, None] == np.asarray(g_pids)[None, :]
    push = np.where(match, s, -s)
    worst = evaluate_rank(d + push, q_pids, g_pids, q_camids, g_camids, **kwargs)
    best = evaluate_rank(d - push, q_pids, g_pids, q_camids, g_camids, **kwargs)
    return worst, best


#: How wide an interval may be before the test refuses it as uninformative. Measured on the real
#: CUHK03 features with the slacks above: at most 3 queries for rank-k (euclidean, rank-10) and
#: 0.0015 for mAP. A wrong model or evaluator moves these metrics by whole points (e.g. 5 points of
#: mAP between the MSMT17 and Market-1501 checkpoints), so these widths still separate right from
#: wrong while leaving room for another CPU's feature rounding.
MAP_WIDTH = 0.003


def rank_width(num_queries: int, queries: int = 4) -> float:
    """The widest rank-k interval accepted: ``queries`` of ``num_queries`` queries changing."""
    return queries / num_queries + 1e-9


def assert_within(name: str, value: float, worst: float, best: float, width: float) -> None:
    """``value`` (computed elsewhere) lies in [worst, best]; the interval is at most ``width``.

    1e-9 absorbs the different summation order of mAP in float64 (Python loop vs NumPy).
    """
    assert best - worst <= width, f"{name}: interval [{worst}, {best}] wider than {width}"
    assert worst - 1e-9 <= value <= best + 1e-9, f"{name}: {value} outside [{worst}, {best}]"
