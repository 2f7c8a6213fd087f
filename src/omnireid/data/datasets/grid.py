"""GRID (QMUL underground re-identification).

Source: Loy et al., "Multi-camera Activity Correlation Analysis", CVPR 2009.

250 paired identities seen by 8 cameras of an underground station, plus 775 gallery images of
people who never appear in the probe set (id 0): 1275 images. The 10 fixed splits of the release
(``trainIdxAll`` in ``features_and_partitions.mat``, 125 training ids each) are written to
``splits.json`` on first use (or torchreid's file is read as it is). Query = probe images of the
125 test ids, gallery = gallery images of the test ids plus all 775 distractors.

File names ``PPPP_C_...jpeg``: person ``PPPP`` (0000 for distractors), camera ``C`` (1..8).

Expected layout::

    ROOT/grid/underground_reid/
        probe/0001_1_25004_107_32_130.jpeg ...
        gallery/0000_1_25006_1_29_103.jpeg 0001_2_... ...
        features_and_partitions.mat
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    ParseReport,
    dataset_from_split_file,
    list_images,
    require_dir,
    require_file,
    triplets,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample
from omnireid.errors import DataError
from omnireid.extras import require

LAYOUT = """\
ROOT/grid/underground_reid/
    probe/0001_1_25004_107_32_130.jpeg ...
    gallery/0000_1_25006_1_29_103.jpeg ...
    features_and_partitions.mat   (holds trainIdxAll: the 10 splits)"""


def parse_folder(folder: Path, report: ParseReport) -> list[Sample]:
    samples = []
    for path in list_images(folder, (".jpeg",)):
        parts = path.name.split("_")
        try:
            pid, cam = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            report.add(path, "name is not PPPP_C_...jpeg")
            continue
        if not 1 <= cam <= 8:
            report.add(path, f"camera {cam} out of range 1..8")
            continue
        samples.append(Sample(str(path), pid, cam - 1))
    return samples


def read_train_indices(mat_path: Path) -> list[list[int]]:
    """The training ids of each split; the third field of each ``trainIdxAll`` entry."""
    loadmat = require("scipy.io", "data", "reading GRID's split file").loadmat
    try:
        entries = loadmat(str(mat_path))["trainIdxAll"][0]
        return [np.asarray(entry[0][0][2]).flatten().astype(int).tolist() for entry in entries]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise DataError(f"{mat_path}: cannot read the training ids from 'trainIdxAll' ({exc})") from exc


@DATASETS.register("grid")
def read_grid(root: str | Path, *, split_id: int = 0) -> ReIDDataset:
    """Read GRID under ``root/grid``; ``split_id`` in 0..9."""
    dataset_dir = require_dir(Path(root).expanduser() / "grid", LAYOUT, "GRID folder")
    base = dataset_dir / "underground_reid"
    probe_dir = require_dir(base / "probe", LAYOUT, "GRID probe folder")
    gallery_dir = require_dir(base / "gallery", LAYOUT, "GRID gallery folder")
    split_path = dataset_dir / "splits.json"

    def create() -> list:
        mat_path = require_file(base / "features_and_partitions.mat", LAYOUT, "GRID split file")
        report = ParseReport()
        probe, gallery = parse_folder(probe_dir, report), parse_folder(gallery_dir, report)
        report.log(f"grid ({base})")
        splits = []
        for train_ids in read_train_indices(mat_path):
            label = {pid: i for i, pid in enumerate(train_ids)}
            train = [Sample(s.path, label[s.pid], s.camid) for s in probe + gallery if s.pid in label]
            query = [s for s in probe if s.pid not in label]
            test_gallery = [s for s in gallery if s.pid not in label]
            splits.append({
                "train": triplets(train, dataset_dir), "query": triplets(query, dataset_dir),
                "gallery": triplets(test_gallery, dataset_dir), "num_train_pids": len(train_ids),
                "num_query_pids": len({s.pid for s in query}),
                "num_gallery_pids": len({s.pid for s in test_gallery}),
            })
        return splits

    return dataset_from_split_file("grid", split_path, create, split_id, dataset_dir, depth=2,
                                   extra={"junk_pids": [0]})
