"""Same-person verification: pair distances, ROC, equal error rate and thresholds at a false-match
rate, with the number of pairs behind every figure.

Distances are cosine distances ``1 - cos(a, b)`` in [0, 2] between L2-normalised embeddings,
computed in float64; a pair is declared "same person" when its distance is ``<= threshold``.

Definitions (the tests hold an independent NumPy computation to them):

* **ROC**: one point per distinct pair distance ``t`` (ascending):
  ``FPR(t) = #{different-person pairs with d <= t} / N`` and
  ``TPR(t) = #{same-person pairs with d <= t} / P``.
* **EER**: the rate where the false-match rate equals the false-non-match rate ``1 - TPR``,
  linearly interpolated between the two ROC points (the point ``t = -inf``, FPR 0, TPR 0 comes
  first) where ``FNR - FPR`` changes sign.
* **Threshold at a target FPR**: the largest ROC threshold with ``FPR(t) <= target``; TPR at
  that FPR is ``TPR(t)`` there. When even the smallest distance is a false match above the
  target, the threshold is just below the smallest distance and TPR is 0.

Everything here takes arrays and returns numbers; plotting and saving belong to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: The false-match rates reported by default.
DEFAULT_FPRS: tuple[float, ...] = (1e-2, 1e-3, 1e-4)
#: A rate is "measured" only when the calibration set holds enough different-person pairs that
#: the threshold rests on at least this many false matches (relative error ~ 1/sqrt(10) = 32 %).
MIN_FALSE_MATCHES = 10
#: With fewer identities the pairs are far from independent: figures vary more than the pair
#: counts suggest.
MIN_IDENTITIES = 20


@dataclass
class PairDistances:
    """Distances of every same-person and (possibly sampled) different-person pair.

    Attributes:
        positive: ``(P,)`` float64 distances of same-person pairs.
        negative: ``(N,)`` float64 distances of different-person pairs.
        positive_ids: ``(P,)`` int32 identity index (0..I-1) of each same-person pair.
        negative_ids: ``(N, 2)`` int32 identity indices ``a < b`` of each different-person pair.
        num_images, num_identities: size of the set the pairs come from.
        total_negatives: different-person pairs in the set (``N`` unless sampled).
        cross_camera: only pairs from different cameras were counted.
    """

    positive: np.ndarray
    negative: np.ndarray
    positive_ids: np.ndarray
    negative_ids: np.ndarray
    num_images: int
    num_identities: int
    total_negatives: int
    cross_camera: bool = False

    @property
    def sampled(self) -> bool:
        return len(self.negative) < self.total_negatives


def _group_pairs(keys: np.ndarray) -> int:
    """Number of unordered pairs inside groups of equal ``keys``."""
    if len(keys) == 0:
        return 0
    _, counts = np.unique(keys, return_counts=True, axis=0)
    return int((counts * (counts - 1) // 2).sum())


def pair_distances(
    embeddings: np.ndarray,
    labels: Sequence | np.ndarray,
    cameras: Sequence[int] | np.ndarray | None = None,
    cross_camera: bool = False,
    max_negatives: int | None = None,
    seed: int = 0,
    chunk: int = 512,
) -> PairDistances:
    """Cosine distances of all pairs ``i < j``, split by identity.

    Args:
        embeddings: ``(M, D)`` float embeddings (normalised here, in float64).
        labels: ``M`` identity labels (ints or strings).
        cameras: ``M`` camera ids; needed with ``cross_camera``.
        cross_camera: count only pairs seen by different cameras.
        max_negatives: keep about this many different-person pairs, drawn uniformly (seeded)
            when there are more; every same-person pair is kept.
        seed: for the draw.
        chunk: rows per block of the distance matrix (memory ``chunk * M`` doubles).

    Raises:
        ValueError: shapes disagree, an embedding is not finite or is all zeros, or cameras are
            missing for ``cross_camera``.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    lab = np.asarray(labels)
    if x.ndim != 2 or len(x) != len(lab):
        raise ValueError(f"embeddings {x.shape} and {len(lab)} labels do not match")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} embedding(s) hold NaN or infinity, e.g. row "
                         f"{int(np.flatnonzero(bad)[0])}")
    norms = np.linalg.norm(x, axis=1)
    if (norms == 0).any():
        raise ValueError(f"embedding row {int(np.flatnonzero(norms == 0)[0])} is all zeros")
    x = x / norms[:, None]
    _, ids = np.unique(lab, return_inverse=True)
    ids = ids.reshape(-1)
    cams = None
    if cross_camera:
        if cameras is None:
            raise ValueError("cross_camera needs camera ids")
        cams = np.asarray(cameras).reshape(-1)
        if len(cams) != len(ids) or (cams < 0).any():
            raise ValueError("cross_camera needs a known camera id (>= 0) for every image")
    m = len(x)
    if cams is None:
        total_pairs = m * (m - 1) // 2
        total_pos = _group_pairs(ids)
    else:
        total_pairs = m * (m - 1) // 2 - _group_pairs(cams)
        total_pos = _group_pairs(ids) - _group_pairs(np.stack([ids, cams], 1))
    total_neg = total_pairs - total_pos
    keep = 1.0
    if max_negatives is not None and total_neg > max_negatives:
        keep = max_negatives / total_neg
    rng = np.random.default_rng(seed)
    ids = ids.astype(np.int32)
    pos_d, pos_i, neg_d, neg_i = [], [], [], []
    for start in range(0, m, chunk):
        stop = min(m, start + chunk)
        d = 1.0 - x[start:stop] @ x.T
        rows = np.arange(start, stop)[:, None]
        upper = np.arange(m)[None, :] > rows
        if cams is not None:
            upper &= cams[start:stop, None] != cams[None, :]
        same = ids[start:stop, None] == ids[None, :]
        r, c = np.nonzero(upper & same)
        pos_d.append(d[r, c])
        pos_i.append(ids[start + r])
        neg_mask = upper & ~same
        if keep < 1.0:
            neg_mask &= rng.random(d.shape) < keep
        r, c = np.nonzero(neg_mask)
        neg_d.append(d[r, c])
        a, b = ids[start + r], ids[c]
        neg_i.append(np.stack([np.minimum(a, b), np.maximum(a, b)], 1))
    return PairDistances(
        np.concatenate(pos_d) if pos_d else np.zeros(0),
        np.concatenate(neg_d) if neg_d else np.zeros(0),
        np.concatenate(pos_i) if pos_i else np.zeros(0, np.int32),
        np.concatenate(neg_i) if neg_i else np.zeros((0, 2), np.int32),
        m, int(ids.max()) + 1 if m else 0, int(total_neg), cross_camera)


@dataclass
class IdentityInterval:
    """Intervals for FPR and TPR at one threshold from resampling identities (see
    :func:`identity_bootstrap`): ``(low, high)`` at ``level``, and standard deviations."""

    fpr: tuple[float, float]
    tpr: tuple[float, float]
    fpr_sd: float
    tpr_sd: float
    level: float
    reps: int


def identity_bootstrap(pairs: PairDistances, threshold: float, reps: int = 1000,
                       level: float = 0.95, seed: int = 0) -> IdentityInterval:
    """How much FPR and TPR at ``threshold`` would move with other people in the set.

    Pairs that share a person are not independent (two look-alike people give many false
    matches at once), so a binomial interval over pair counts is far too narrow. This draws the
    identities with replacement ``reps`` times; each draw weighs the pairs of identities ``a, b``
    by how often both were drawn (``w_a * w_b``; same-person pairs by ``w_a``) and recomputes
    the rates. Returns percentile intervals at ``level``.
    """
    num = pairs.num_identities
    rng = np.random.default_rng(seed)
    neg_key = pairs.negative_ids[:, 0].astype(np.int64) * num + pairs.negative_ids[:, 1]
    keys, inv = np.unique(neg_key, return_inverse=True)
    k_neg = np.bincount(inv, weights=pairs.negative <= threshold)
    n_neg = np.bincount(inv).astype(np.float64)
    ua, ub = keys // num, keys % num
    k_pos = np.bincount(pairs.positive_ids, weights=pairs.positive <= threshold, minlength=num)
    n_pos = np.bincount(pairs.positive_ids, minlength=num).astype(np.float64)
    block = max(1, int(2e7 // max(len(keys), 1)))
    fprs, tprs = [], []
    for start in range(0, reps, block):
        w = rng.multinomial(num, np.full(num, 1.0 / num), size=min(block, reps - start))
        w = w.astype(np.float64)
        ww = w[:, ua] * w[:, ub]
        with np.errstate(invalid="ignore", divide="ignore"):
            fprs.append((ww @ k_neg) / (ww @ n_neg))
            tprs.append((w @ k_pos) / (w @ n_pos))
    f = np.concatenate(fprs)
    t = np.concatenate(tprs)
    f, t = f[np.isfinite(f)], t[np.isfinite(t)]
    q = [(1 - level) / 2, (1 + level) / 2]
    return IdentityInterval(tuple(np.quantile(f, q).tolist()), tuple(np.quantile(t, q).tolist()),
                            float(f.std()), float(t.std()), level, reps)


@dataclass
class Roc:
    """ROC points at every distinct distance, ascending.

    Attributes:
        thresholds: ``(T,)`` float64 distances.
        true_matches, false_matches: ``(T,)`` int64 same-/different-person pairs with
            ``d <= threshold``.
        num_positive, num_negative: pair counts P and N.
    """

    thresholds: np.ndarray
    true_matches: np.ndarray
    false_matches: np.ndarray
    num_positive: int
    num_negative: int

    @property
    def tpr(self) -> np.ndarray:
        return self.true_matches / max(self.num_positive, 1)

    @property
    def fpr(self) -> np.ndarray:
        return self.false_matches / max(self.num_negative, 1)


def roc_curve(positive: np.ndarray, negative: np.ndarray) -> Roc:
    """The ROC of same-person distances ``(P,)`` against different-person distances ``(N,)``."""
    pos = np.asarray(positive, dtype=np.float64).reshape(-1)
    neg = np.asarray(negative, dtype=np.float64).reshape(-1)
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError(f"a ROC needs same-person and different-person pairs; got {len(pos)} "
                         f"same-person and {len(neg)} different-person pairs")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("pair distances hold NaN or infinity")
    d = np.concatenate([pos, neg])
    is_pos = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    order = np.argsort(d, kind="stable")
    d = d[order]
    tp = np.cumsum(is_pos[order])
    fp = np.arange(1, len(d) + 1) - tp
    last = np.r_[d[1:] != d[:-1], True]
    return Roc(d[last], tp[last], fp[last], len(pos), len(neg))


def equal_error_rate(roc: Roc) -> tuple[float, float]:
    """``(eer, threshold)``: where FPR = 1 - TPR, interpolated (see the module docstring)."""
    fpr = np.r_[0.0, roc.fpr]
    fnr = np.r_[1.0, 1.0 - roc.tpr]
    t = np.r_[roc.thresholds[0], roc.thresholds]
    gap = fnr - fpr
    i = int(np.argmax(gap <= 0))  # the last point always has FNR 0 <= FPR 1
    a, b = gap[i - 1], gap[i]
    w = a / (a - b)
    eer = fpr[i - 1] + w * (fpr[i] - fpr[i - 1])
    return float(eer), float(t[i - 1] + w * (t[i] - t[i - 1]))


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a binomial proportion."""
    if trials <= 0:
        return (0.0, 1.0)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class OperatingPoint:
    """The threshold for one target false-match rate and what it gives on the calibration set.

    ``fpr``/``tpr`` are measured at ``threshold``; ``false_matches``/``true_matches`` are the
    pair counts behind them, out of ``num_negative``/``num_positive``. ``enough`` is False when
    the set is too small to measure ``target_fpr`` (``note`` says why). ``identities`` holds
    intervals from resampling identities when the pairs' identities are known.
    """

    target_fpr: float
    threshold: float
    fpr: float
    tpr: float
    false_matches: int
    true_matches: int
    num_negative: int
    num_positive: int
    enough: bool
    note: str = ""
    identities: IdentityInterval | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "identities"}
        d["fpr_pair_interval95"] = list(wilson_interval(self.false_matches, self.num_negative))
        d["tpr_pair_interval95"] = list(wilson_interval(self.true_matches, self.num_positive))
        if self.identities is not None:
            d["fpr_identity_interval95"] = list(self.identities.fpr)
            d["tpr_identity_interval95"] = list(self.identities.tpr)
            d["fpr_identity_sd"] = self.identities.fpr_sd
            d["tpr_identity_sd"] = self.identities.tpr_sd
        return d


def _size_note(target: float, num_negative: int, false_matches: int) -> tuple[bool, str]:
    expected = target * num_negative
    needed = math.ceil(MIN_FALSE_MATCHES / target)
    if expected < 1:
        return False, (f"calibration set too small for FPR {target:g}: {num_negative:,} "
                       f"different-person pairs cannot show one false match at this rate "
                       f"(needs >= {math.ceil(1 / target):,}; >= {needed:,} to measure it); "
                       f"the threshold is only a bound")
    if expected < MIN_FALSE_MATCHES:
        return False, (f"calibration set too small for FPR {target:g}: the threshold rests on "
                       f"{false_matches} false match(es) among {num_negative:,} different-person "
                       f"pairs; >= {needed:,} pairs are needed for {MIN_FALSE_MATCHES}")
    return True, ""


def operating_point(roc: Roc, target_fpr: float) -> OperatingPoint:
    """The threshold with the highest TPR whose FPR is ``<= target_fpr`` on this ROC."""
    if not 0 < target_fpr < 1:
        raise ValueError(f"target FPR must be in (0, 1), got {target_fpr}")
    limit = math.floor(target_fpr * roc.num_negative + 1e-9)  # false matches allowed
    i = int(np.searchsorted(roc.false_matches, limit, side="right")) - 1
    if i < 0:
        threshold = float(np.nextafter(roc.thresholds[0], -np.inf))
        tm = fm = 0
    else:
        threshold, tm, fm = (float(roc.thresholds[i]), int(roc.true_matches[i]),
                             int(roc.false_matches[i]))
    enough, note = _size_note(target_fpr, roc.num_negative, fm)
    return OperatingPoint(target_fpr, threshold, fm / roc.num_negative, tm / roc.num_positive,
                          fm, tm, roc.num_negative, roc.num_positive, enough, note)


@dataclass
class VerificationResult:
    """ROC, EER and operating points of one calibration set (see :func:`verification_report`).

    Attributes:
        roc: the full ROC.
        eer, eer_threshold: equal error rate and the distance where it occurs.
        points: one :class:`OperatingPoint` per requested FPR.
        positive, negative: the pair distances (``(P,)``, ``(N,)`` float64), for plots.
        num_identities, num_images: size of the set (when known).
        notes: warnings about the size of the set, in words.
    """

    roc: Roc
    eer: float
    eer_threshold: float
    points: list[OperatingPoint]
    positive: np.ndarray
    negative: np.ndarray
    num_identities: int | None = None
    num_images: int | None = None
    total_negatives: int | None = None
    notes: list[str] = field(default_factory=list)

    def point(self, target_fpr: float) -> OperatingPoint:
        """The operating point computed for ``target_fpr`` (one of the requested rates)."""
        for p in self.points:
            if math.isclose(p.target_fpr, target_fpr, rel_tol=1e-9):
                return p
        return operating_point(self.roc, target_fpr)

    def to_dict(self, roc_points: int = 200) -> dict:
        """Plain numbers for JSON: counts, EER, operating points and a thinned ROC (about
        ``roc_points`` points spaced evenly in log FPR)."""
        fpr, tpr = self.roc.fpr, self.roc.tpr
        grid = np.unique(np.r_[np.geomspace(1.0 / max(self.roc.num_negative, 1), 1.0, roc_points),
                               [p.target_fpr for p in self.points]])
        idx = np.unique(np.clip(np.searchsorted(fpr, grid, side="right") - 1, 0, len(fpr) - 1))
        return {
            "num_positive_pairs": self.roc.num_positive,
            "num_negative_pairs": self.roc.num_negative,
            "total_negative_pairs": self.total_negatives,
            "num_identities": self.num_identities,
            "num_images": self.num_images,
            "eer": self.eer,
            "eer_threshold": self.eer_threshold,
            "operating_points": [p.to_dict() for p in self.points],
            "notes": list(self.notes),
            "roc": {"fpr": fpr[idx].tolist(), "tpr": tpr[idx].tolist(),
                    "threshold": self.roc.thresholds[idx].tolist()},
        }


def verification_report(
    positive: np.ndarray | PairDistances,
    negative: np.ndarray | None = None,
    fprs: Sequence[float] = DEFAULT_FPRS,
    num_identities: int | None = None,
    bootstrap_reps: int = 1000,
    seed: int = 0,
) -> VerificationResult:
    """ROC, EER and the threshold at each false-match rate in ``fprs``.

    Args:
        positive: ``(P,)`` same-person distances, or a :class:`PairDistances` (then
            ``negative`` and ``num_identities`` come from it, and every operating point gets
            intervals from resampling identities, :func:`identity_bootstrap`).
        negative: ``(N,)`` different-person distances.
        fprs: target false-match rates.
        num_identities: identities behind the pairs (for the small-set warning).
        bootstrap_reps: identity resamples per operating point (0: none).
        seed: for the resampling.
    """
    num_images = total = None
    pairs = None
    if isinstance(positive, PairDistances):
        pairs = positive
        positive, negative = pairs.positive, pairs.negative
        num_identities, num_images, total = (pairs.num_identities, pairs.num_images,
                                             pairs.total_negatives)
    roc = roc_curve(positive, negative)
    eer, eer_t = equal_error_rate(roc)
    points = [operating_point(roc, f) for f in fprs]
    notes = [p.note for p in points if p.note]
    if pairs is not None and bootstrap_reps > 0:
        for p in points:
            p.identities = identity_bootstrap(pairs, p.threshold, bootstrap_reps, seed=seed)
            high = p.identities.fpr[1]
            if p.enough and high > 2 * p.target_fpr:
                p.enough = False
                p.note = (f"calibration set too small for FPR {p.target_fpr:g}: with other "
                          f"people of the same kind the FPR at this threshold could be as high "
                          f"as {high:.2g} (95 %, resampling the {pairs.num_identities} "
                          f"identities); the false matches come from few pairs of people. "
                          f"Calibrate on more identities")
                notes.append(p.note)
    if num_identities is not None and num_identities < MIN_IDENTITIES:
        notes.append(f"only {num_identities} identities: pairs that share a person are not "
                     f"independent, so the figures vary more than the pair counts suggest; use "
                     f">= {MIN_IDENTITIES} identities")
    if total is not None and total > roc.num_negative:
        notes.append(f"different-person pairs sampled: {roc.num_negative:,} of {total:,}")
    return VerificationResult(roc, eer, eer_t, points, np.asarray(positive, np.float64),
                              np.asarray(negative, np.float64), num_identities, num_images, total,
                              notes)


__all__ = [
    "DEFAULT_FPRS", "MIN_FALSE_MATCHES", "OperatingPoint", "PairDistances", "Roc",
    "VerificationResult", "equal_error_rate", "operating_point", "pair_distances", "roc_curve",
    "verification_report", "wilson_interval",
]
