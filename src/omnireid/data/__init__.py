"""Datasets, transforms, samplers and loaders.

Entry points: :func:`load_dataset` (any registered layout, custom data or the synthetic
benchmark), :func:`build_train_loader` / :func:`build_test_loader`, the samplers and
:func:`summarize`. Submodules are imported on first use to keep ``import omnireid`` light.
"""

from __future__ import annotations

from omnireid._lazy import lazy_attributes
from omnireid.data.records import UNKNOWN_CAMERA, ReIDDataset, Sample

_LAZY = {
    "DATASETS": "omnireid.data.datasets",
    "load_dataset": "omnireid.data.datasets",
    "list_datasets": "omnireid.data.datasets",
    "combine_datasets": "omnireid.data.combine",
    "combine_all": "omnireid.data.combine",
    "DatasetLayoutError": "omnireid.data.datasets.common",
    "read_image": "omnireid.data.decode",
    "check_images": "omnireid.data.decode",
    "ImageDecodeError": "omnireid.data.decode",
    "build_train_transform": "omnireid.data.transforms",
    "build_test_transform": "omnireid.data.transforms",
    "standardize_batch": "omnireid.data.transforms",
    "RandomIdentitySampler": "omnireid.data.samplers",
    "CameraBalancedSampler": "omnireid.data.samplers",
    "DatasetBalancedSampler": "omnireid.data.samplers",
    "ShuffleSampler": "omnireid.data.samplers",
    "Batch": "omnireid.data.loaders",
    "ImageDataset": "omnireid.data.loaders",
    "build_train_loader": "omnireid.data.loaders",
    "build_test_loader": "omnireid.data.loaders",
    "SyntheticSpec": "omnireid.data.synthetic",
    "generate_domain": "omnireid.data.synthetic",
    "summarize": "omnireid.data.summary",
    "SplitStats": "omnireid.data.summary",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())


__all__ = ["Sample", "ReIDDataset", "UNKNOWN_CAMERA", *_LAZY]
