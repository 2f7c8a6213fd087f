"""Datasets, transforms, samplers and loaders."""

from omnireid.data.records import UNKNOWN_CAMERA, ReIDDataset, Sample

__all__ = ["Sample", "ReIDDataset", "UNKNOWN_CAMERA"]
