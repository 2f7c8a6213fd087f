"""Evaluation: distances, rank metrics under the re-ID protocols, k-reciprocal re-ranking.

Everything here takes arrays and returns numbers; printing, plotting and saving belong to the
caller.
"""

from __future__ import annotations

from omnireid._lazy import lazy_attributes
from omnireid.evaluation.rank import (
    PROTOCOLS,
    RankResult,
    SplitInputs,
    SplitResult,
    evaluate_rank,
    evaluate_splits,
)
from omnireid.evaluation.rank_reference import evaluate_rank_reference

# torch-backed helpers load on first use
_LAZY = {
    "compute_distance_matrix": "omnireid.evaluation.distances",
    "euclidean_squared_distance": "omnireid.evaluation.distances",
    "cosine_distance": "omnireid.evaluation.distances",
    "l2_normalize": "omnireid.evaluation.distances",
    "flip_average": "omnireid.evaluation.distances",
    "re_ranking": "omnireid.evaluation.rerank",
    "re_ranking_features": "omnireid.evaluation.rerank",
}


__getattr__ = lazy_attributes(__name__, _LAZY, globals())[0]


__all__ = [
    "PROTOCOLS",
    "RankResult",
    "SplitInputs",
    "SplitResult",
    "evaluate_rank",
    "evaluate_rank_reference",
    "evaluate_splits",
    *_LAZY,
]
