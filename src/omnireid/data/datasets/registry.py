"""The dataset registry: name -> reader function ``reader(root, **options) -> ReIDDataset``."""

from __future__ import annotations

from omnireid.registry import Registry

DATASETS: Registry = Registry("dataset")
