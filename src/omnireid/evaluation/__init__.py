"""Evaluation: distances, rank metrics under the re-ID protocols, k-reciprocal re-ranking.

Everything here takes arrays and returns numbers; printing, plotting and saving belong to the
caller.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omnireid.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
