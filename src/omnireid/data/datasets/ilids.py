"""QMUL iLIDS (i-LIDS Pedestrian / VID re-ID single-shot images).

Source: Zheng et al., "Associating Groups of People", BMVC 2009.

119 identities, 476 images from an airport's cameras (cameras not given explicitly). Protocol:
10 random splits of the ids in half (59 training / 60 test); for each test id one random image is
the query and another the gallery. Splits come from ``split_seed`` and are stored as file-name
lists in ``splits.json`` (``splits_seed{N}.json``); torchreid's file is read as it is.

File names ``PPPPCCC.jpg``: person ``PPPP``; torchreid takes ``CCC - 1`` as the camera and so do we.

Expected layout::

    ROOT/ilids/i-LIDS_Pedestrian/Persons/0001001.jpg 0001002.jpg ...
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    ParseReport,
    check_paths_exist,
    list_images,
    load_or_create_splits,
    pick_split,
    relabel_map,
    require_dir,
    seeded_split_path,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample
from omnireid.errors import DataError

logger = logging.getLogger(__name__)

LAYOUT = """\
ROOT/ilids/i-LIDS_Pedestrian/Persons/0001001.jpg 0001002.jpg ... (PPPPCCC.jpg)"""


def _parse(name: str) -> tuple[int, int] | None:
    stem = Path(name).stem
    if len(stem) != 7 or not stem.isdigit():
        return None
    return int(stem[:4]), int(stem[4:7]) - 1


@DATASETS.register("ilids")
def read_ilids(root: str | Path, *, split_id: int = 0, split_seed: int = 0) -> ReIDDataset:
    """Read QMUL iLIDS under ``root/ilids``; ``split_id`` in 0..9."""
    dataset_dir = require_dir(Path(root).expanduser() / "ilids", LAYOUT, "iLIDS folder")
    data_dir = require_dir(dataset_dir / "i-LIDS_Pedestrian" / "Persons", LAYOUT, "iLIDS image folder")
    split_path = seeded_split_path(dataset_dir, "splits.json", split_seed)

    def create() -> list:
        report = ParseReport()
        by_pid: dict[int, list[str]] = {}
        for path in list_images(data_dir, (".jpg",)):
            parsed = _parse(path.name)
            if parsed is None:
                report.add(path, "name is not PPPPCCC.jpg")
                continue
            by_pid.setdefault(parsed[0], []).append(path.name)
        report.log(f"ilids ({data_dir})")
        if len(by_pid) < 2:
            raise DatasetLayoutError(f"iLIDS: fewer than 2 identities in {data_dir}", LAYOUT)
        if sum(map(len, by_pid.values())) != 476 or len(by_pid) != 119:
            logger.warning("iLIDS: %d images of %d ids in %s (the release has 476 of 119)",
                           sum(map(len, by_pid.values())), len(by_pid), data_dir)
        pids = sorted(by_pid)
        rng = np.random.default_rng(split_seed)
        splits = []
        for _ in range(10):
            order = [pids[i] for i in rng.permutation(len(pids))]
            train_pids, test_pids = sorted(order[: len(pids) // 2]), sorted(order[len(pids) // 2:])
            train = [name for pid in train_pids for name in by_pid[pid]]
            query, gallery = [], []
            for pid in test_pids:
                names = by_pid[pid]
                if len(names) < 2:
                    gallery.append(names[0])
                    continue
                a, b = rng.choice(len(names), size=2, replace=False)
                query.append(names[a])
                gallery.append(names[b])
            splits.append({"train": train, "query": query, "gallery": gallery, "seed": split_seed})
        return splits

    splits = load_or_create_splits(split_path, create, "ilids")
    split = pick_split(splits, split_id, split_path)

    def samples(names: list[str], relabel: bool) -> list[Sample]:
        parsed = [(n, _parse(n)) for n in names]
        bad = [n for n, p in parsed if p is None]
        if bad:
            raise DataError(f"{split_path}: unreadable image names, e.g. {bad[:3]}")
        mapping = relabel_map(p[0] for _, p in parsed) if relabel else None
        return [Sample(str(data_dir / n), mapping[p[0]] if mapping else p[0], p[1]) for n, p in parsed]

    train = samples(split["train"], True)
    query, gallery = samples(split["query"], False), samples(split["gallery"], False)
    check_paths_exist(train + query + gallery, split_path)
    return ReIDDataset(
        "ilids", train, query, gallery,
        extra={"split_id": split_id, "num_splits": len(splits), "split_file": str(split_path)},
    )
