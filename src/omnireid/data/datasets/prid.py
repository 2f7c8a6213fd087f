"""PRID 2011, single-shot version.

Source: Hirzer et al., "Person Re-Identification by Descriptive and Discriminative
Classification", SCIA 2011.

Two cameras: view A has 385 people, view B 749; the first 200 appear in both. Protocol: 10 random
splits of the 200 shared ids into 100 training / 100 test ids. Query = view-A images of the test
ids; gallery = view-B images of the test ids plus the 549 people seen only by view B. Splits come
from ``split_seed`` and are stored as id lists in ``splits_single_shot.json``
(``splits_single_shot_seed{N}.json``); torchreid's file is read as it is. The shared and B-only
ids are found from the files, which on the real data gives torchreid's 1..200 and 201..749.

Expected layout::

    ROOT/prid2011/prid_2011/single_shot/
        cam_a/person_0001.png ... person_0385.png
        cam_b/person_0001.png ... person_0749.png
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    ParseReport,
    check_paths_exist,
    list_images,
    load_or_create_splits,
    pick_split,
    require_dir,
    seeded_split_path,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample

LAYOUT = """\
ROOT/prid2011/prid_2011/single_shot/
    cam_a/person_0001.png ...
    cam_b/person_0001.png ..."""

NAME = re.compile(r"^person_(\d{4})\.png$")


def person_ids(folder: Path, report: ParseReport) -> set[int]:
    ids = set()
    for path in list_images(folder, (".png",)):
        m = NAME.match(path.name)
        if m:
            ids.add(int(m.group(1)))
        else:
            report.add(path, "name is not person_NNNN.png")
    return ids


@DATASETS.register("prid")
def read_prid(root: str | Path, *, split_id: int = 0, split_seed: int = 0) -> ReIDDataset:
    """Read PRID 2011 (single shot) under ``root/prid2011``; ``split_id`` in 0..9."""
    dataset_dir = require_dir(Path(root).expanduser() / "prid2011", LAYOUT, "PRID 2011 folder")
    base = dataset_dir / "prid_2011" / "single_shot"
    cam_a = require_dir(base / "cam_a", LAYOUT, "PRID camera A folder")
    cam_b = require_dir(base / "cam_b", LAYOUT, "PRID camera B folder")
    report = ParseReport()
    ids_a, ids_b = person_ids(cam_a, report), person_ids(cam_b, report)
    report.log(f"prid ({base})")
    shared = sorted(ids_a & ids_b)
    if len(shared) < 2:
        raise DatasetLayoutError(f"PRID: fewer than 2 people appear in both {cam_a} and {cam_b}", LAYOUT)
    split_path = seeded_split_path(dataset_dir, "splits_single_shot.json", split_seed)

    def create() -> list:
        rng = np.random.default_rng(split_seed)
        splits = []
        for _ in range(10):
            train = sorted(rng.choice(shared, size=len(shared) // 2, replace=False).tolist())
            test = [pid for pid in shared if pid not in set(train)]
            splits.append({"train": train, "test": test, "seed": split_seed})
        return splits

    splits = load_or_create_splits(split_path, create, "prid")
    split = pick_split(splits, split_id, split_path)

    def path(folder: Path, pid: int) -> str:
        return str(folder / f"person_{pid:04d}.png")

    label = {pid: i for i, pid in enumerate(split["train"])}
    train = [Sample(path(c, pid), label[pid], cam) for pid in split["train"] for cam, c in ((0, cam_a), (1, cam_b))]
    query = [Sample(path(cam_a, pid), pid, 0) for pid in split["test"]]
    gallery = [Sample(path(cam_b, pid), pid, 1) for pid in split["test"]]
    gallery += [Sample(path(cam_b, pid), pid, 1) for pid in sorted(ids_b - ids_a)]
    check_paths_exist(train + query + gallery, split_path)
    return ReIDDataset(
        "prid", train, query, gallery,
        extra={"split_id": split_id, "num_splits": len(splits), "split_file": str(split_path),
               "unparsed": report.as_dict()},
    )
