"""Verdicts on the paper's claims, computed from per-seed results.

Input: result rows, one per (model, setting, seed), each with ``rank1`` and ``mAP`` (percent)
and, per target dataset, the same metrics in ``targets`` (see :func:`omnireid.engine.reproduce`).
Output: one :class:`Claim` per claim with a verdict, ``holds``, ``fails`` or ``not resolved``,
and the evidence (the numbers and the test) that decided it.

**The test.** Every claim compares two models (or two training settings) seed by seed: the
difference ``d_s = A_s - B_s`` of rank-1 for each seed ``s`` run with both. Then

* with ``n >= 2`` seeds: a two-sided paired t-test at 5 %: the difference is *resolved* when
  ``|mean(d)| > t(0.975, n-1) * sd(d) / sqrt(n)`` (t = 12.71 for 2 seeds, 4.30 for 3, 2.78 for 5);
* with 1 seed there is no spread to test against, so a reference seed spread ``sigma`` (rank-1
  points, one model trained with different seeds) stands in for it: the difference of two such
  runs has spread ``sigma * sqrt(2)``, and ``d`` is resolved when ``|d| > 1.96 * sqrt(2) *
  sigma`` (``sigma = 2`` by default: ``|d| > 5.5`` points).

A difference smaller than ``min_difference`` (1 rank-1 point by default) is never resolved,
whatever the spread: a few seeds can show a spuriously small spread (identical differences give
zero), and rank-1 on a few hundred queries moves in steps of a few tenths of a point.

A resolved difference in the claimed direction makes the claim *hold*, one in the other direction
makes it *fail*; anything else is *not resolved* -- including "equal within the spread", which is
not evidence for a claim that one model is at least as good as another.

Claims (``rank1`` unless said otherwise):

* **a** -- IN costs a little same-domain accuracy: OSNet-IBN and OSNet-AIN each against OSNet on
  the source's own test split; holds when IN is lower by a resolved margin of at most
  ``small_cost`` points (default 5), fails when IN is resolved higher or lower by more.
* **b** -- IN improves cross-domain accuracy: OSNet-IBN and OSNet-AIN each against OSNet on the
  mean of the single-source cross-domain settings (style, population, both shifts).
* **c** -- OSNet-AIN >= OSNet-IBN cross-domain (same mean).
* **d** -- the searched placement (the child) >= the hand-designed ones (OSNet, OSNet-IBN), same
  mean; the child against OSNet-AIN (the paper's searched placement) is reported beside it.
* **e** -- multi-source training beats single-source on an unseen domain: per model, the
  leave-one-domain-out model against the single-source model on the same held-out domains; the
  verdict tests the mean over models.

Where one claim rests on several comparisons (a, b, d), it holds when all of them hold, fails
when all of them fail, and is not resolved otherwise (the evidence lists each).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

HOLDS, FAILS, NOT_RESOLVED = "holds", "fails", "not resolved"
VERDICTS = (HOLDS, FAILS, NOT_RESOLVED)

#: two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)
Z975 = 1.96

SINGLE_SOURCE_SHIFTS = ("style", "population", "both")
SAME_DOMAIN = "same-domain"
MULTI_SOURCE = "multi-source"


def t_critical(dof: int) -> float:
    """Two-sided 95 % critical value of Student's t with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    return _T975[dof - 1] if dof <= len(_T975) else Z975


@dataclass
class Comparison:
    """A paired comparison of ``a`` against ``b`` over seeds (``differences = a - b``)."""

    a: str
    b: str
    metric: str
    seeds: list[int]
    a_values: list[float]
    b_values: list[float]
    differences: list[float]
    mean: float
    sd: float | None  # None with one seed
    threshold: float  # |mean| must exceed this to be resolved
    test: str
    resolved: bool

    @property
    def direction(self) -> int:
        """+1 when ``a`` is resolved higher, -1 when resolved lower, 0 otherwise."""
        return (1 if self.mean > 0 else -1) if self.resolved else 0

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "metric": self.metric, "seeds": self.seeds,
                "a_values": _r(self.a_values), "b_values": _r(self.b_values),
                "differences": _r(self.differences), "mean_difference": round(self.mean, 3),
                "sd_difference": None if self.sd is None else round(self.sd, 3),
                "threshold": round(self.threshold, 3), "resolved": self.resolved, "test": self.test}


def _r(values: Iterable[float]) -> list[float]:
    return [round(float(v), 3) for v in values]


def paired_comparison(a: str, b: str, a_by_seed: Mapping[int, float], b_by_seed: Mapping[int, float],
                      *, metric: str = "rank1", one_seed_sigma: float = 2.0,
                      min_difference: float = 1.0) -> Comparison:
    """Compare ``a`` with ``b`` on the seeds both have (see the module docstring for the test).

    Args:
        a_by_seed, b_by_seed: ``{seed: value}`` (percent).
        one_seed_sigma: reference seed spread (points) used when only one seed is shared.
        min_difference: differences below this (points) are never resolved.

    Raises:
        ValueError: when the two share no seed.
    """
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if not seeds:
        raise ValueError(f"{a} and {b} share no seed")
    av = [float(a_by_seed[s]) for s in seeds]
    bv = [float(b_by_seed[s]) for s in seeds]
    d = [x - y for x, y in zip(av, bv)]
    mean = statistics.fmean(d)
    n = len(d)
    if n >= 2:
        sd = statistics.stdev(d)
        tc = t_critical(n - 1)
        threshold = tc * sd / math.sqrt(n)
        test = (f"paired t-test over {n} seeds, two-sided 5 %: |mean difference| > t({n - 1}) "
                f"{tc:.3f} x sd {sd:.2f} / sqrt({n}) = {threshold:.2f} points")
    else:
        sd = None
        threshold = Z975 * math.sqrt(2.0) * one_seed_sigma
        test = (f"one seed: |difference| > 1.96 x sqrt(2) x reference seed spread "
                f"{one_seed_sigma:g} = {threshold:.2f} points")
    if threshold < min_difference:
        threshold = min_difference
        test += f" (raised to the smallest difference counted, {min_difference:g} points)"
    resolved = abs(mean) > threshold
    return Comparison(a, b, metric, seeds, av, bv, d, mean, sd, threshold, test, resolved)


@dataclass
class Claim:
    """One of the paper's claims, its verdict here and what decided it."""

    id: str
    statement: str
    verdict: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "statement": self.statement, "verdict": self.verdict,
                "evidence": self.evidence}


# --------------------------------------------------------------------------------------------
# From rows to per-seed values
# --------------------------------------------------------------------------------------------
def values_by_seed(rows: Iterable[Mapping[str, Any]], model: str, setting: str,
                   metric: str = "rank1") -> dict[int, float]:
    """``{seed: row[metric]}`` of the rows of ``model`` in ``setting``."""
    return {int(r["seed"]): float(r[metric]) for r in rows
            if r["model"] == model and r["setting"] == setting}


def cross_domain_by_seed(rows: Iterable[Mapping[str, Any]], model: str, metric: str = "rank1",
                         shifts: Sequence[str] = SINGLE_SOURCE_SHIFTS) -> dict[int, float]:
    """Per seed, the mean over the single-source shift settings present for every seed."""
    rows = list(rows)
    per_shift = {s: values_by_seed(rows, model, s, metric) for s in shifts}
    per_shift = {s: v for s, v in per_shift.items() if v}
    if not per_shift:
        return {}
    seeds = set.intersection(*(set(v) for v in per_shift.values()))
    return {seed: statistics.fmean(v[seed] for v in per_shift.values()) for seed in sorted(seeds)}


def _target_values(rows: Iterable[Mapping[str, Any]], model: str, setting: str,
                   metric: str) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["model"] == model and r["setting"] == setting:
            out.setdefault(int(r["seed"]), {}).update(
                {t: float(m[metric]) for t, m in r.get("targets", {}).items()})
    return out


def multi_vs_single_by_seed(rows: Iterable[Mapping[str, Any]], model: str, metric: str = "rank1"
                            ) -> tuple[dict[int, float], dict[int, float], list[str]]:
    """Per seed, the mean over held-out domains of the multi-source model and of the
    single-source model on the same domains (only domains both were tested on)."""
    rows = list(rows)
    multi = _target_values(rows, model, MULTI_SOURCE, metric)
    single: dict[int, dict[str, float]] = {}
    for setting in (*SINGLE_SOURCE_SHIFTS, SAME_DOMAIN):
        for seed, t in _target_values(rows, model, setting, metric).items():
            single.setdefault(seed, {}).update(t)
    m_out, s_out, used = {}, {}, set()
    for seed in sorted(set(multi) & set(single)):
        common = sorted(set(multi[seed]) & set(single[seed]))
        if common:
            m_out[seed] = statistics.fmean(multi[seed][t] for t in common)
            s_out[seed] = statistics.fmean(single[seed][t] for t in common)
            used.update(common)
    return m_out, s_out, sorted(used)


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------
def directional_verdict(c: Comparison, expected: int = 1) -> str:
    """``holds`` when ``c`` is resolved in the ``expected`` direction (+1: a > b, -1: a < b),
    ``fails`` when resolved the other way, ``not resolved`` otherwise."""
    if c.direction == 0:
        return NOT_RESOLVED
    return HOLDS if c.direction == expected else FAILS


def small_cost_verdict(c: Comparison, small_cost: float) -> str:
    """Claim (a) on one comparison ``IN model - OSNet``: holds when resolved lower by at most
    ``small_cost`` points; fails when resolved higher, or resolved lower by more than that."""
    if c.direction == 0:
        return NOT_RESOLVED
    if c.direction > 0:
        return FAILS
    return HOLDS if -c.mean <= small_cost else FAILS


def combine(verdicts: Sequence[str]) -> str:
    """All hold -> holds; all fail -> fails; otherwise not resolved."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if verdicts and all(v == FAILS for v in verdicts):
        return FAILS
    return NOT_RESOLVED


STATEMENTS = {
    "a": "Instance normalisation costs a little same-domain accuracy.",
    "b": "Instance normalisation improves cross-domain accuracy.",
    "c": "OSNet-AIN is at least as good as OSNet-IBN across domains.",
    "d": "The searched IN placement is at least as good as the hand-designed ones across domains.",
    "e": "Multi-source training beats single-source training on an unseen domain.",
}


def evaluate_claims(
    rows: Sequence[Mapping[str, Any]],
    *,
    osnet: str = "osnet",
    ibn: str = "osnet_ibn",
    ain: str = "osnet_ain",
    child: str = "child",
    metric: str = "rank1",
    one_seed_sigma: float = 2.0,
    min_difference: float = 1.0,
    small_cost: float = 5.0,
    paper: Mapping[str, Any] | None = None,
) -> list[Claim]:
    """Verdicts for claims a-e from result rows (see the module docstring).

    A claim whose models or settings are missing from ``rows`` is ``not resolved`` with the
    reason in its evidence. ``paper``: per claim id, the published numbers to put beside it.
    """
    rows = list(rows)
    paper = paper or {}

    def cmp(a: str, b: str, av: dict[int, float], bv: dict[int, float]) -> Comparison | None:
        if not av or not bv or not set(av) & set(bv):
            return None
        return paired_comparison(a, b, av, bv, metric=metric, one_seed_sigma=one_seed_sigma,
                                 min_difference=min_difference)

    def claim(cid: str, comparisons: list[tuple[Comparison | None, Callable[[Comparison], str]]],
              extra: dict[str, Any] | None = None, note: str = "") -> Claim:
        present = [(c, rule) for c, rule in comparisons if c is not None]
        if len(present) < len(comparisons):
            verdict = NOT_RESOLVED
            note = (note + " " if note else "") + "Some models or settings are missing from the results."
        else:
            verdict = combine([rule(c) for c, rule in present])
        evidence: dict[str, Any] = {
            "comparisons": [{**c.to_dict(), "verdict": rule(c)} for c, rule in present],
        }
        if note:
            evidence["note"] = note
        if extra:
            evidence.update(extra)
        if cid in paper:
            evidence["paper"] = paper[cid]
        return Claim(cid, STATEMENTS[cid], verdict, evidence)

    def up(c: Comparison) -> str:
        return directional_verdict(c, +1)

    def cost(c: Comparison) -> str:
        return small_cost_verdict(c, small_cost)

    same = {m: values_by_seed(rows, m, SAME_DOMAIN, metric) for m in (osnet, ibn, ain, child)}
    cross = {m: cross_domain_by_seed(rows, m, metric) for m in (osnet, ibn, ain, child)}
    claims = [
        claim("a", [(cmp(ibn, osnet, same[ibn], same[osnet]), cost),
                    (cmp(ain, osnet, same[ain], same[osnet]), cost)],
              note=f"'a little' = at most {small_cost:g} {metric} points; setting: {SAME_DOMAIN}."),
    ]
    per_shift = {}
    for shift in SINGLE_SOURCE_SHIFTS:
        o = values_by_seed(rows, osnet, shift, metric)
        entries = {}
        for m in (ibn, ain):
            c = cmp(m, osnet, values_by_seed(rows, m, shift, metric), o)
            if c is not None:
                entries[f"{m} - {osnet}"] = {**c.to_dict(), "verdict": up(c)}
        if entries:
            per_shift[shift] = entries
    claims.append(claim("b", [(cmp(ibn, osnet, cross[ibn], cross[osnet]), up),
                              (cmp(ain, osnet, cross[ain], cross[osnet]), up)],
                        extra={"per_shift": per_shift},
                        note="setting: mean of the single-source style, population and both shifts."))
    claims.append(claim("c", [(cmp(ain, ibn, cross[ain], cross[ibn]), up)],
                        note="setting: mean of the single-source style, population and both shifts."))
    vs_ain = cmp(child, ain, cross[child], cross[ain])
    claims.append(claim("d", [(cmp(child, osnet, cross[child], cross[osnet]), up),
                              (cmp(child, ibn, cross[child], cross[ibn]), up)],
                        extra={"child_vs_osnet_ain": None if vs_ain is None else
                               {**vs_ain.to_dict(), "verdict": up(vs_ain)}},
                        note="hand-designed: OSNet (no IN) and OSNet-IBN; setting: mean of the "
                             "single-source shifts. The child against OSNet-AIN (the placement the "
                             "paper's search found on real data) is reported beside the verdict."))
    # (e): multi-source vs single-source on the same held-out domains, mean over models per seed
    per_model, multi_mean, single_mean, used_domains = {}, {}, {}, set()
    for m in (osnet, ibn, ain, child):
        mv, sv, used = multi_vs_single_by_seed(rows, m, metric)
        c = cmp(f"{m} multi-source", f"{m} single-source", mv, sv)
        if c is None:
            continue
        per_model[m] = {**c.to_dict(), "verdict": up(c), "held_out": used}
        used_domains.update(used)
        for seed in c.seeds:
            multi_mean.setdefault(seed, []).append(mv[seed])
            single_mean.setdefault(seed, []).append(sv[seed])
    n_models = len(per_model)
    mm = {s: statistics.fmean(v) for s, v in multi_mean.items() if len(v) == n_models}
    sm = {s: statistics.fmean(v) for s, v in single_mean.items() if len(v) == n_models}
    claims.append(claim("e", [(cmp("multi-source", "single-source", mm, sm), up)],
                        extra={"per_model": per_model, "held_out": sorted(used_domains)},
                        note=f"mean over the {n_models} models of each model's leave-one-domain-out "
                             "result against its single-source result on the same held-out domains."))
    return claims


__all__ = ["Claim", "Comparison", "FAILS", "HOLDS", "MULTI_SOURCE", "NOT_RESOLVED", "SAME_DOMAIN",
           "SINGLE_SOURCE_SHIFTS", "STATEMENTS", "VERDICTS", "combine", "cross_domain_by_seed",
           "directional_verdict", "evaluate_claims", "multi_vs_single_by_seed", "paired_comparison",
           "small_cost_verdict", "t_critical", "values_by_seed"]
