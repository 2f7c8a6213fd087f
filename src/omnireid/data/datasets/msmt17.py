"""MSMT17 (versions 1 and 2).

Source: Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person Re-Identification",
CVPR 2018. Version 2 has the same images with faces blurred and different folder names.

Statistics (15 cameras):

=============  =====  ======
split          ids    images
=============  =====  ======
train          1041   30248   (``list_train.txt``)
val            1041    2373   (``list_val.txt``; images of the training ids)
query          3060   11659
gallery        3060   82161
=============  =====  ======

The split is given by the list files (``relative/path.jpg pid`` per line); training ids in the list
are already 0..1040 and are used as they are. Like torchreid, the validation list joins the
training set only with ``combineall``. The camera is the third ``_`` field of the file name
(``0000_000_01_0303morning_0015_0.jpg`` -> camera 1, stored 0-based).

Expected layout (v1; v2 uses ``MSMT17_V2``, ``mask_train_v2`` and ``mask_test_v2``)::

    ROOT/msmt17/MSMT17_V1/
        train/0000/0000_000_01_0303morning_0015_0.jpg ...
        test/0000/0000_000_01_0303morning_0016_0.jpg ...
        list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
"""

from __future__ import annotations

from pathlib import Path

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    ParseReport,
    require_dir,
    require_file,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset, Sample

LAYOUT = """\
ROOT/msmt17/MSMT17_V1/                     or  ROOT/msmt17/MSMT17_V2/
    train/0000/0000_000_01_....jpg ...         mask_train_v2/...
    test/0000/0000_000_01_....jpg ...          mask_test_v2/...
    list_train.txt list_val.txt list_query.txt list_gallery.txt   ("0000/0000_000_01_....jpg 0" per line)"""

VERSIONS = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
}
NUM_CAMERAS = 15


def read_list(list_path: Path, image_dir: Path, report: ParseReport) -> list[Sample]:
    """Parse an MSMT17 list file; malformed lines go to ``report``."""
    samples = []
    with open(list_path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{list_path.name}:{lineno}"
            if len(fields) != 2:
                report.add(where, f"expected 'path pid', got {line.strip()!r}")
                continue
            rel, pid_text = fields
            parts = Path(rel).name.split("_")
            try:
                pid = int(pid_text)
                cam = int(parts[2])
            except (ValueError, IndexError):
                report.add(where, f"cannot read pid/camera from {line.strip()!r}")
                continue
            if not 1 <= cam <= NUM_CAMERAS:
                report.add(where, f"camera {cam} out of range 1..{NUM_CAMERAS}")
                continue
            samples.append(Sample(str(image_dir / rel), pid, cam - 1))
    return samples


@DATASETS.register("msmt17")
def read_msmt17(root: str | Path) -> ReIDDataset:
    """Read MSMT17 (v1 or v2, whichever is present; v1 first) under ``root/msmt17``."""
    dataset_dir = require_dir(Path(root).expanduser() / "msmt17", LAYOUT, "MSMT17 folder")
    version = next((v for v in VERSIONS if (dataset_dir / v).is_dir()), None)
    if version is None:
        raise DatasetLayoutError(f"neither MSMT17_V1 nor MSMT17_V2 found in {dataset_dir}", LAYOUT)
    main = dataset_dir / version
    train_name, test_name = VERSIONS[version]
    train_dir = require_dir(main / train_name, LAYOUT, "MSMT17 train folder")
    test_dir = require_dir(main / test_name, LAYOUT, "MSMT17 test folder")
    report = ParseReport()
    lists = {}
    for split, image_dir in (("train", train_dir), ("val", train_dir), ("query", test_dir), ("gallery", test_dir)):
        path = require_file(main / f"list_{split}.txt", LAYOUT, f"MSMT17 {split} list")
        lists[split] = read_list(path, image_dir, report)
    report.log(f"msmt17 ({main})")
    return ReIDDataset(
        name="msmt17",
        train=lists["train"],
        query=lists["query"],
        gallery=lists["gallery"],
        extra={"version": version, "val": lists["val"], "unparsed": report.as_dict(), "data_dir": str(main)},
    )
