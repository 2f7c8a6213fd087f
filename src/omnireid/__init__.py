"""omnireid: person re-identification with OSNet and OSNet-AIN."""

from __future__ import annotations

from omnireid._lazy import lazy_attributes

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
    "Verifier": "omnireid.inference",
    "calibrate": "omnireid.inference",
    "Gallery": "omnireid.inference",
    "TrackBank": "omnireid.inference",
    "BoxEmbedder": "omnireid.inference",
    "list_recipes": "omnireid.recipes",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = ["__version__", *_LAZY]
