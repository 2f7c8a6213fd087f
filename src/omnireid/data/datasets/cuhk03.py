"""CUHK03.

Source: Li et al., "DeepReID: Deep Filter Pairing Neural Network for Person Re-identification",
CVPR 2014. New protocol: Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017.

1467 identities seen by 5 camera pairs (two views each), 14097 images, in two versions: boxes
drawn by hand (``labeled=True``) and boxes from a detector (default).

Protocols (``classic_split=False`` is the default, as in torchreid):

- new (767/700): train 767 ids / 7368 images (labeled; 7365 detected), query 700 ids / 1400
  images, gallery 700 ids / 5328 images (labeled; 5332 detected). One split.
- classic: 20 splits of 1367 training ids and 100 test ids; query and gallery are the same test
  images (the two views match each other).

Cameras are the two views of a pair (0 and 1). On first use the images are extracted from
``cuhk-03.mat`` (MATLAB v7.3 / HDF5, read with h5py) to PNG files named
``{pair}_{person:03d}_{view}_{image:02d}.png`` and the split files are written next to them, in
torchreid's format and file names; split files torchreid already wrote are read as they are.

Expected layout::

    ROOT/cuhk03/
        cuhk03_release/cuhk-03.mat
        cuhk03_new_protocol_config_detected.mat
        cuhk03_new_protocol_config_labeled.mat
        (written on first use: images_detected/ images_labeled/ splits_classic_detected.json
         splits_classic_labeled.json splits_new_detected.json splits_new_labeled.json)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from omnireid.data.datasets.common import (
    DatasetLayoutError,
    dataset_from_split_file,
    relative_to,
    require_dir,
    require_file,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.records import ReIDDataset
from omnireid.errors import DataError
from omnireid.extras import require
from omnireid.files import atomic_path
from omnireid.progress import progress_bar

logger = logging.getLogger(__name__)

LAYOUT = """\
ROOT/cuhk03/
    cuhk03_release/cuhk-03.mat
    cuhk03_new_protocol_config_detected.mat
    cuhk03_new_protocol_config_labeled.mat"""

IMAGE_NAME = re.compile(r"^(\d)_(\d{3})_(\d)_(\d{2})\.png$")
KINDS = ("detected", "labeled")


def _import_h5py():
    return require("h5py", "data", "reading cuhk-03.mat")


def _loadmat(path: Path) -> dict:
    loadmat = require("scipy.io", "data", "reading the CUHK03 protocol files").loadmat
    try:
        return loadmat(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot be read as a MATLAB file ({exc})") from exc


def _save_png(array: np.ndarray, path: Path) -> None:
    with atomic_path(path, durable=False) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def extract_images(mat_path: Path, dataset_dir: Path) -> None:
    """Write every image of ``cuhk-03.mat`` as PNG into ``images_detected/`` and ``images_labeled/``."""
    h5py = _import_h5py()

    with h5py.File(mat_path, "r") as mat:
        for kind in KINDS:
            out_dir = dataset_dir / f"images_{kind}"
            out_dir.mkdir(parents=True, exist_ok=True)
            if kind not in mat:
                raise DatasetLayoutError(f"{mat_path}: no '{kind}' entry; is this cuhk-03.mat?", LAYOUT)
            pairs = mat[kind][0]
            for pair_index, pair_ref in enumerate(pairs):
                cells = mat[pair_ref][:].T  # (num_persons, 10) references
                for person in progress_bar(range(cells.shape[0]), desc=f"cuhk03 {kind} pair {pair_index + 1}"):
                    found = 0
                    for image_index, ref in enumerate(cells[person]):
                        img = mat[ref][:].T  # (H, W, 3) uint8, or an empty placeholder
                        if img.size == 0 or img.ndim < 3:
                            continue
                        view = 1 if image_index < 5 else 2
                        name = f"{pair_index + 1}_{person + 1:03d}_{view}_{image_index + 1:02d}.png"
                        path = out_dir / name
                        if not path.is_file():
                            _save_png(img.astype(np.uint8), path)
                        found += 1
                    if not found:
                        raise DataError(f"{mat_path}: {kind} pair {pair_index + 1} person {person + 1} has no images")


def _images_by_person(image_dir: Path) -> list[tuple[int, int, list[Path]]]:
    """[(pair, person, [image paths])] in pair/person order, read back from the PNG names."""
    groups: dict[tuple[int, int], list[Path]] = {}
    for path in sorted(image_dir.glob("*.png")):
        m = IMAGE_NAME.match(path.name)
        if m:
            groups.setdefault((int(m.group(1)), int(m.group(2))), []).append(path)
    return [(pair, person, paths) for (pair, person), paths in sorted(groups.items())]


def _camera(path: str | Path) -> int:
    return int(Path(path).name.split("_")[2]) - 1


def classic_splits(mat_path: Path, image_dir: Path, dataset_dir: Path) -> list[dict]:
    """The 20 classic splits (100 test ids each) from ``testsets`` in cuhk-03.mat."""
    h5py = _import_h5py()
    people = _images_by_person(image_dir)
    with h5py.File(mat_path, "r") as mat:
        testsets = [
            {(int(pair), int(person)) for pair, person in mat[ref][:].T.tolist()}
            for ref in mat["testsets"][0]
        ]
    splits = []
    for test_ids in testsets:
        train: list[list] = []
        test: list[list] = []
        n_train = n_test = 0
        for pair, person, paths in people:
            if (pair, person) in test_ids:
                test.extend([relative_to(str(p), dataset_dir), n_test, _camera(p)] for p in paths)
                n_test += 1
            else:
                train.extend([relative_to(str(p), dataset_dir), n_train, _camera(p)] for p in paths)
                n_train += 1
        splits.append({
            "train": train, "query": test, "gallery": test,
            "num_train_pids": n_train, "num_train_imgs": len(train),
            "num_query_pids": n_test, "num_query_imgs": len(test),
            "num_gallery_pids": n_test, "num_gallery_imgs": len(test),
        })
    return splits


def new_protocol_split(config_path: Path, image_dir: Path, dataset_dir: Path) -> list[dict]:
    """The 767/700 split from ``cuhk03_new_protocol_config_*.mat``."""
    config = _loadmat(config_path)
    for key in ("train_idx", "query_idx", "gallery_idx", "labels", "filelist"):
        if key not in config:
            raise DataError(f"{config_path}: missing '{key}'")
    labels = config["labels"].flatten().astype(int)
    files = [str(np.asarray(item).flatten()[0]) for item in config["filelist"].flatten()]
    train_idx = config["train_idx"].flatten().astype(int) - 1
    mapping = {pid: label for label, pid in enumerate(sorted({int(labels[i]) for i in train_idx}))}

    def make(indices: np.ndarray, relabel: bool) -> list[list]:
        out = []
        for i in indices:
            pid = int(labels[i])
            name = files[i]
            out.append([relative_to(str(image_dir / name), dataset_dir), mapping[pid] if relabel else pid, _camera(name)])
        return out

    train = make(train_idx, True)
    query = make(config["query_idx"].flatten().astype(int) - 1, False)
    gallery = make(config["gallery_idx"].flatten().astype(int) - 1, False)
    return [{
        "train": train, "query": query, "gallery": gallery,
        "num_train_pids": len({s[1] for s in train}), "num_train_imgs": len(train),
        "num_query_pids": len({s[1] for s in query}), "num_query_imgs": len(query),
        "num_gallery_pids": len({s[1] for s in gallery}), "num_gallery_imgs": len(gallery),
    }]


@DATASETS.register("cuhk03")
def read_cuhk03(
    root: str | Path, *, split_id: int = 0, labeled: bool = False, classic_split: bool = False
) -> ReIDDataset:
    """Read CUHK03 under ``root/cuhk03`` (detected boxes and the 767/700 protocol by default)."""
    dataset_dir = require_dir(Path(root).expanduser() / "cuhk03", LAYOUT, "CUHK03 folder")
    kind = "labeled" if labeled else "detected"
    image_dir = dataset_dir / f"images_{kind}"
    mat_path = dataset_dir / "cuhk03_release" / "cuhk-03.mat"
    split_path = dataset_dir / f"splits_{'classic' if classic_split else 'new'}_{kind}.json"

    def create() -> list:
        """Only runs when the split file is missing: extract images if needed, then split."""
        if not image_dir.is_dir() or not any(image_dir.glob("*.png")):
            require_file(mat_path, LAYOUT, "CUHK03 raw file")
            logger.info("extracting CUHK03 images from %s (once)", mat_path)
            extract_images(mat_path, dataset_dir)
        if classic_split:
            require_file(mat_path, LAYOUT, "CUHK03 raw file")
            return classic_splits(mat_path, image_dir, dataset_dir)
        config = require_file(
            dataset_dir / f"cuhk03_new_protocol_config_{kind}.mat", LAYOUT, "CUHK03 new-protocol file")
        return new_protocol_split(config, image_dir, dataset_dir)

    return dataset_from_split_file(
        "cuhk03", split_path, create, split_id, dataset_dir, check=("train", "query"),
        extra={"protocol": "classic" if classic_split else "767/700", "kind": kind})
