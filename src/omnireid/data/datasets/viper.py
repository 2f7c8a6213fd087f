"""VIPeR.

Source: Gray et al., "Evaluating Appearance Models for Recognition, Reacquisition, and
Tracking", PETS 2007.

632 identities, one image in each of two cameras (1264 images). Small dataset protocol: 10 random
splits of 316 training / 316 test ids, each used twice (camera A as query and B as gallery, then
the reverse), so ``split_id`` runs over 0..19. Splits come from ``split_seed`` and are written to
``splits.json`` (``splits_seed{N}.json`` for other seeds); torchreid's ``splits.json`` is read as it
is. The two images of a person are paired by their position in the sorted file lists of
``cam_a`` and ``cam_b``, as in the original release.

Expected layout::

    ROOT/viper/VIPeR/
        cam_a/000_45.bmp 001_45.bmp ...
        cam_b/000_45.bmp 001_90.bmp ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    dataset_from_split_file,
    list_images,
    require_dir,
    seeded_split_path,
    triplets,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample

LAYOUT = """\
ROOT/viper/VIPeR/
    cam_a/000_45.bmp ...
    cam_b/000_45.bmp ...      (same number of images as cam_a; paired by sorted order)"""


def make_splits(cam_a: list[Path], cam_b: list[Path], dataset_dir: Path, seed: int) -> list[dict]:
    num_pids = len(cam_a)
    num_train = num_pids // 2
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(10):
        order = rng.permutation(num_pids)
        train_idx, test_idx = order[:num_train], order[num_train:]
        train = []
        for label, i in enumerate(train_idx):
            train += [Sample(str(cam_a[i]), label, 0), Sample(str(cam_b[i]), label, 1)]
        test_a = [Sample(str(cam_a[i]), label, 0) for label, i in enumerate(test_idx)]
        test_b = [Sample(str(cam_b[i]), label, 1) for label, i in enumerate(test_idx)]
        for query, gallery in ((test_a, test_b), (test_b, test_a)):
            splits.append({
                "train": triplets(train, dataset_dir), "query": triplets(query, dataset_dir),
                "gallery": triplets(gallery, dataset_dir), "num_train_pids": num_train,
                "num_query_pids": num_pids - num_train, "num_gallery_pids": num_pids - num_train,
                "seed": seed,
            })
    return splits


@DATASETS.register("viper")
def read_viper(root: str | Path, *, split_id: int = 0, split_seed: int = 0) -> ReIDDataset:
    """Read VIPeR under ``root/viper``; ``split_id`` in 0..19."""
    dataset_dir = require_dir(Path(root).expanduser() / "viper", LAYOUT, "VIPeR folder")
    cam_a_dir = require_dir(dataset_dir / "VIPeR" / "cam_a", LAYOUT, "VIPeR camera A folder")
    cam_b_dir = require_dir(dataset_dir / "VIPeR" / "cam_b", LAYOUT, "VIPeR camera B folder")
    split_path = seeded_split_path(dataset_dir, "splits.json", split_seed)

    def create() -> list:
        cam_a, cam_b = list_images(cam_a_dir, (".bmp",)), list_images(cam_b_dir, (".bmp",))
        if len(cam_a) != len(cam_b) or not cam_a:
            raise DatasetLayoutError(
                f"VIPeR needs the same number (>0) of .bmp images in {cam_a_dir} ({len(cam_a)}) "
                f"and {cam_b_dir} ({len(cam_b)})", LAYOUT)
        return make_splits(cam_a, cam_b, dataset_dir, split_seed)

    return dataset_from_split_file("viper", split_path, create, split_id, dataset_dir, depth=2)
