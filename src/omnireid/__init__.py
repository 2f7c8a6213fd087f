"""omnireid: person re-identification with OSNet and OSNet-AIN."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names, imported on first use so that `import omnireid` stays light.
_LAZY = {
    "create_model": "omnireid.models",
    "list_models": "omnireid.models",
    "model_complexity": "omnireid.models",
    "load_weights": "omnireid.models",
    "Sample": "omnireid.data",
    "ReIDDataset": "omnireid.data",
    "load_dataset": "omnireid.data",
    "list_datasets": "omnireid.data",
    "evaluate_rank": "omnireid.evaluation",
    "compute_distance_matrix": "omnireid.evaluation",
    "re_ranking": "omnireid.evaluation",
    "FeatureExtractor": "omnireid.inference",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'omnireid' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["__version__", *_LAZY]
