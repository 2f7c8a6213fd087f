"""Accuracy gates for the reduced-precision paths (bf16, int8).

A reduced-precision path is accepted only where, on the same labelled crops and in the same run,
its retrieval metrics (rank-1 and mAP, computed with :func:`omnireid.evaluation.evaluate_rank`,
camera-0 images as queries against the other cameras, cosine distance) lose no more than the
gate's tolerance against the fp32 model, and its embeddings keep a mean cosine similarity to the
fp32 ones of at least ``min_mean_cosine``.

The tolerances follow the targets the project set itself: bf16 within 0.5 points, int8 within
1.0 point. A gain never fails a gate (only losses count). The rank-1 tolerance is never smaller
than one query (100 / number of queries points), the finest step rank-1 can take on the gate
crops; with few queries a tighter bound would refuse a path for a single flipped query.

Without crops of the caller's own, the gate uses synthetic labelled crops
(:func:`omnireid.inference.quantize.synthetic_crops`, a seed different from the calibration
crops'). They check that the reduced-precision model still ranks like the fp32 one; they are not
the caller's domain, so for a model trained on real images the real-crop effect can differ
(docs/deployment.md gives the numbers measured on real CUHK03 crops).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from omnireid.errors import UsageError
from omnireid.evaluation import evaluate_rank
from omnireid.evaluation.distances import compute_distance_matrix

logger = logging.getLogger(__name__)

GATE_SEED = 2
GATES: dict[str, tuple[float, float]] = {"bf16": (0.5, 0.99), "int8": (1.0, 0.95)}
"""Per precision: (largest allowed loss of rank-1 and of mAP in points, smallest mean cosine)."""


class AccuracyGateError(UsageError):
    """A reduced-precision path lost more accuracy than its gate allows (the message has the
    numbers)."""


@dataclass
class GateResult:
    """fp32 against reduced precision on the same labelled crops (metrics in percent)."""

    precision: str
    rank1_fp32: float
    rank1: float
    mAP_fp32: float
    mAP: float
    mean_cosine: float
    min_cosine: float
    num_queries: int
    tolerance: float
    min_mean_cosine: float
    passed: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def retrieval_metrics(features: np.ndarray, pids: np.ndarray, camids: np.ndarray) -> tuple[float, float, int]:
    """Rank-1 and mAP in percent, and the number of queries, of cosine retrieval with camera 0
    as queries and every other camera as the gallery. ``features``: ``(N, D)``."""
    q = camids == camids.min()
    if q.all() or not q.any():
        raise UsageError("the gate crops need at least two cameras")
    dist = compute_distance_matrix(features[q], features[~q], "cosine")
    res = evaluate_rank(dist, pids[q], pids[~q], camids[q], camids[~q], max_rank=1)
    return 100 * res.rank(1), 100 * res.mAP, res.num_valid_queries


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of corresponding rows of two ``(N, D)`` arrays."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(1) / np.maximum(norms, 1e-30)


def check_accuracy(
    reference: np.ndarray,
    features: np.ndarray,
    pids: np.ndarray,
    camids: np.ndarray,
    precision: str,
    tolerance: float | None = None,
    min_mean_cosine: float | None = None,
) -> GateResult:
    """Gate ``features`` (reduced precision) against ``reference`` (fp32), both ``(N, D)`` for
    the same crops with identities ``pids`` and cameras ``camids``.

    ``tolerance`` (points) and ``min_mean_cosine`` default to :data:`GATES` for ``precision``.
    """
    if reference.shape != features.shape:
        raise ValueError(f"reference {reference.shape} and features {features.shape} differ")
    tol_default, cos_default = GATES.get(precision, (1.0, 0.95))
    tol = tol_default if tolerance is None else tolerance
    min_cos = cos_default if min_mean_cosine is None else min_mean_cosine
    r1_ref, map_ref, nq = retrieval_metrics(reference, pids, camids)
    r1, mean_ap, _ = retrieval_metrics(features, pids, camids)
    cos = cosine_rows(reference, features)
    rank1_tol = max(tol, 100.0 / max(nq, 1))
    problems = []
    if r1_ref - r1 > rank1_tol + 1e-9:
        problems.append(f"rank-1 {r1:.2f} vs fp32 {r1_ref:.2f} (loses {r1_ref - r1:.2f} > "
                        f"{rank1_tol:.2f} points)")
    if map_ref - mean_ap > tol + 1e-9:
        problems.append(f"mAP {mean_ap:.2f} vs fp32 {map_ref:.2f} (loses {map_ref - mean_ap:.2f} > "
                        f"{tol:.2f} points)")
    if cos.mean() < min_cos:
        problems.append(f"mean cosine to fp32 {cos.mean():.4f} < {min_cos}")
    reason = "; ".join(problems) if problems else (
        f"rank-1 {r1:.2f} (fp32 {r1_ref:.2f}), mAP {mean_ap:.2f} (fp32 {map_ref:.2f}), "
        f"mean cosine {cos.mean():.4f} on {nq} queries")
    return GateResult(precision, r1_ref, r1, map_ref, mean_ap, float(cos.mean()), float(cos.min()),
                      nq, tol, min_cos, not problems, reason)
