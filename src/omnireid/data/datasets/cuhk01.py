"""CUHK01.

Source: Li et al., "Human Reidentification with Transferred Metric Learning", ACCV 2012.

971 identities, 3884 images, two camera views (four images per person: two per view). Small
dataset protocol: 10 random splits of 485 training ids / 486 test ids, each used twice (view A as
query and view B as gallery, then the reverse), so ``split_id`` runs over 0..19. Splits come from
``split_seed`` and are written to ``splits.json`` (``splits_seed{N}.json`` for other seeds) next to
the data; a ``splits.json`` torchreid already wrote is read as it is.

File names ``PPPPCCC.png``: person ``PPPP`` (1-based), image ``CCC``; images 1-2 are view A
(camera 0) and images 3-4 view B (camera 1).

Expected layout::

    ROOT/cuhk01/
        campus/0001001.png 0001002.png ...     (or CUHK01.zip, extracted on first use)
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    ParseReport,
    dataset_from_split_file,
    list_images,
    require_dir,
    seeded_split_path,
    triplets,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample

logger = logging.getLogger(__name__)

LAYOUT = """\
ROOT/cuhk01/
    campus/0001001.png 0001002.png 0001003.png 0001004.png 0002001.png ...   (or CUHK01.zip)"""


def parse_campus(campus: Path, report: ParseReport) -> list[Sample]:
    samples = []
    for path in list_images(campus, (".png",)):
        stem = path.stem
        if len(stem) != 7 or not stem.isdigit():
            report.add(path, "name is not PPPPCCC.png")
            continue
        pid, image = int(stem[:4]) - 1, int(stem[4:7])
        if pid < 0 or image < 1:
            report.add(path, "person/image number must start at 1")
            continue
        samples.append(Sample(str(path), pid, (image - 1) // 2))
    return samples


def make_splits(samples: list[Sample], dataset_dir: Path, seed: int, num_random: int = 10) -> list[dict]:
    """``num_random`` random halvings of the ids, each as (A query, B gallery) and (B, A)."""
    pids = sorted({s.pid for s in samples})
    num_train = len(pids) // 2
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(num_random):
        train_pids = sorted(rng.permutation(pids)[:num_train].tolist())
        label = {pid: i for i, pid in enumerate(train_pids)}
        train = [Sample(s.path, label[s.pid], s.camid) for s in samples if s.pid in label]
        test_a = [s for s in samples if s.pid not in label and s.camid == 0]
        test_b = [s for s in samples if s.pid not in label and s.camid == 1]
        for query, gallery in ((test_a, test_b), (test_b, test_a)):
            splits.append({
                "train": triplets(train, dataset_dir), "query": triplets(query, dataset_dir),
                "gallery": triplets(gallery, dataset_dir), "num_train_pids": num_train,
                "num_query_pids": len(pids) - num_train, "num_gallery_pids": len(pids) - num_train,
                "seed": seed,
            })
    return splits


@DATASETS.register("cuhk01")
def read_cuhk01(root: str | Path, *, split_id: int = 0, split_seed: int = 0) -> ReIDDataset:
    """Read CUHK01 under ``root/cuhk01``; ``split_id`` in 0..19."""
    dataset_dir = require_dir(Path(root).expanduser() / "cuhk01", LAYOUT, "CUHK01 folder")
    campus = dataset_dir / "campus"
    if not campus.is_dir():
        archive = dataset_dir / "CUHK01.zip"
        if not archive.is_file():
            raise DatasetLayoutError(f"CUHK01 image folder not found: {campus} (nor {archive})", LAYOUT)
        logger.info("extracting %s", archive)
        with zipfile.ZipFile(archive) as z:
            z.extractall(dataset_dir)
        require_dir(campus, LAYOUT, "CUHK01 image folder (after extracting CUHK01.zip)")
    split_path = seeded_split_path(dataset_dir, "splits.json", split_seed)

    def create() -> list:
        report = ParseReport()
        samples = parse_campus(campus, report)
        report.log(f"cuhk01 ({campus})")
        if not samples:
            raise DatasetLayoutError(f"no usable images in {campus}", LAYOUT)
        return make_splits(samples, dataset_dir, split_seed)

    return dataset_from_split_file("cuhk01", split_path, create, split_id, dataset_dir)
