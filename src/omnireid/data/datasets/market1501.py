"""Market-1501 (and its 500k distractor set).

Source: Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015.

Statistics (standard split; 6 cameras):

=========  =====  ======  =======
split      ids    images  cameras
=========  =====  ======  =======
train        751   12936        6
query        750    3368        6
gallery      751   15913        6
=========  =====  ======  =======

Gallery ids count the distractor id 0 (background/false detections); the 2793 junk images with
id -1 are left out as torchreid does (their count is in ``extra["junk_dropped"]``). With
``market1501_500k=True`` about 500k extra distractor images are appended to the gallery.
Training ids are relabelled to 0..750 in sorted order; query/gallery keep the original ids.

Expected layout::

    ROOT/market1501/
        Market-1501-v15.09.15/          (optional level: the folders may also sit directly here)
            bounding_box_train/0002_c1s1_000451_03.jpg ...
            query/0001_c1s1_001051_00.jpg ...
            bounding_box_test/-1_c1s1_000401_03.jpg, 0000_c1s1_000151_01.jpg, 0001_... ...
            images/                     (only with market1501_500k=True)
"""

from __future__ import annotations

import logging
from pathlib import Path

from omnireid.data.datasets.common import (
    ParseReport,
    parse_market_folder,
    relabel,
    require_dir,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset

logger = logging.getLogger(__name__)

LAYOUT = """\
ROOT/market1501/
    Market-1501-v15.09.15/        (optional level)
        bounding_box_train/  0002_c1s1_000451_03.jpg ...
        query/               0001_c1s1_001051_00.jpg ...
        bounding_box_test/   0000_c1s1_000151_01.jpg ...
        images/              (500k distractors, only with market1501_500k=True)"""

JUNK_PIDS = (0, -1)


@DATASETS.register("market1501")
def read_market1501(root: str | Path, *, market1501_500k: bool = False) -> ReIDDataset:
    """Read Market-1501 under ``root/market1501``; see the module docstring for the layout."""
    dataset_dir = require_dir(Path(root).expanduser() / "market1501", LAYOUT, "Market-1501 folder")
    data_dir = dataset_dir / "Market-1501-v15.09.15"
    if not data_dir.is_dir():
        data_dir = dataset_dir
    report = ParseReport()
    folders = {
        "train": data_dir / "bounding_box_train",
        "query": data_dir / "query",
        "gallery": data_dir / "bounding_box_test",
    }
    splits = {}
    junk = 0
    for split, folder in folders.items():
        require_dir(folder, LAYOUT, f"Market-1501 {split} folder")
        samples, dropped = parse_market_folder(folder, max_camera=6, max_pid=1501, report=report)
        splits[split] = samples
        junk += dropped
    if market1501_500k:
        folder = require_dir(data_dir / "images", LAYOUT, "Market-1501 500k distractor folder")
        samples, dropped = parse_market_folder(folder, max_camera=6, report=report)
        splits["gallery"] += samples
        junk += dropped
    report.log(f"market1501 ({data_dir})")
    return ReIDDataset(
        name="market1501",
        train=relabel(splits["train"]),
        query=splits["query"],
        gallery=splits["gallery"],
        extra={"junk_pids": list(JUNK_PIDS), "junk_dropped": junk, "unparsed": report.as_dict(), "data_dir": str(data_dir)},
    )
