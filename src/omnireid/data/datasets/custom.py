"""Your own data, without writing code: three readers.

``market_style`` -- a folder of Market-1501-style file names (``PID_cCAM...``; id -1 = junk)::

    ROOT/                                    ROOT/
        train/ (or bounding_box_train/)          0001_c1_0001.jpg
        query/                          or       0001_c2_0007.jpg     (one flat folder: all of it
        gallery/ (or bounding_box_test/)         0002_c1_0003.jpg      is training data unless
                                                                        test_fraction > 0)

``csv_manifest`` -- a CSV file ``path,pid,camid[,split]`` (header optional; paths relative to the
CSV file's folder; pid any text or number; camid empty or -1 when unknown; split one of
train/query/gallery)::

    path,pid,camid,split
    images/a.jpg,17,0,train
    images/b.jpg,17,1,query

  Every path must stay inside the CSV file's folder (no ``../``, no absolute paths) unless the
  reader option ``allow_absolute=True`` is given. A file may appear once per split; an image
  listed under two identities or two cameras, or both for training and for testing, is an
  error. Exact duplicate rows are an error too, or are dropped (and counted in
  ``extra["duplicates_dropped"]``) with ``duplicates="drop"``. An image may be both a query
  and a gallery image (evaluation then leaves the query itself out of its ranking).

``identity_folders`` -- one folder per identity, no camera information::

    ROOT/                          ROOT/
        alice/1.jpg 2.jpg     or       train/alice/... query/bob/... gallery/bob/...
        bob/1.jpg ...

Without explicit query/gallery, ``test_fraction`` > 0 holds out that share of the identities
(chosen with ``split_seed``) and splits their images into query and gallery: with cameras one
query per (identity, camera) when the identity has another camera, without cameras one query per
identity that has at least two images; all the rest goes to the gallery. Data without cameras
gets ``has_cameras=False``: evaluation then cannot apply the same-camera filter and says so.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import (
    ParseReport,
    list_images,
    parse_market_folder,
    relabel,
    relabel_map,
    require_dir,
    require_file,
)
from omnireid.data.datasets.registry import DATASETS
from omnireid.data.decode import IMAGE_EXTENSIONS
from omnireid.data.records import UNKNOWN_CAMERA, ReIDDataset, Sample
from omnireid.errors import DataError, DatasetLayoutError, UsageError

logger = logging.getLogger(__name__)

MARKET_STYLE_LAYOUT = """\
ROOT/train/ (or bounding_box_train/)  0001_c1_0001.jpg ...
ROOT/query/                           0002_c1_0004.jpg ...
ROOT/gallery/ (or bounding_box_test/) 0002_c3_0010.jpg ...
or one flat folder ROOT/0001_c1_0001.jpg ... (PID_cCAM..., PID -1 = junk)"""

CSV_LAYOUT = """\
a CSV file with rows  path,pid,camid[,split]   (optional header line; paths relative to the CSV)
    images/a.jpg,17,0,train
    images/b.jpg,17,1,query
camid empty or -1 = unknown camera; split = train | query | gallery"""

FOLDERS_LAYOUT = """\
ROOT/<identity>/<image>.jpg ...        (one folder per identity)
or ROOT/train/<identity>/...  ROOT/query/<identity>/...  ROOT/gallery/<identity>/..."""

SPLIT_FOLDERS = {
    "train": ("train", "bounding_box_train"),
    "query": ("query",),
    "gallery": ("gallery", "bounding_box_test"),
}


def split_by_identity(
    samples: list[Sample], test_fraction: float, seed: int, has_cameras: bool
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Hold out ``test_fraction`` of the identities and split their images into query/gallery.

    Returns (train with original pids, query, gallery); see the module docstring for the rule.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise UsageError(f"test_fraction must be in [0, 1), got {test_fraction}")
    pids = sorted({s.pid for s in samples})
    num_test = int(round(len(pids) * test_fraction))
    if test_fraction > 0 and num_test == 0:
        num_test = 1
    rng = np.random.default_rng(seed)
    test_pids = {pids[i] for i in rng.permutation(len(pids))[:num_test]}
    train = [s for s in samples if s.pid not in test_pids]
    query: list[Sample] = []
    gallery: list[Sample] = []
    by_pid: dict[int, list[Sample]] = {}
    for s in samples:
        if s.pid in test_pids:
            by_pid.setdefault(s.pid, []).append(s)
    for pid in sorted(by_pid):
        items = by_pid[pid]
        if has_cameras:
            cams = sorted({s.camid for s in items})
            chosen = set()
            if len(cams) > 1:
                for cam in cams:
                    in_cam = [i for i, s in enumerate(items) if s.camid == cam]
                    chosen.add(in_cam[int(rng.integers(len(in_cam)))])
        else:
            chosen = {int(rng.integers(len(items)))} if len(items) > 1 else set()
        for i, s in enumerate(items):
            (query if i in chosen else gallery).append(s)
    return train, query, gallery


def _finish(name: str, train, query, gallery, has_cameras: bool, extra: dict) -> ReIDDataset:
    if not train and not query and not gallery:
        raise DatasetLayoutError(f"{name}: no usable images found in {extra.get('source')}")
    return ReIDDataset(name, relabel(train), query, gallery, has_cameras=has_cameras, extra=extra)


@DATASETS.register("market_style")
def read_market_style(
    root: str | Path, *, test_fraction: float = 0.0, split_seed: int = 0
) -> ReIDDataset:
    """A folder of ``PID_cCAM...`` images, with train/query/gallery subfolders or flat."""
    folder = require_dir(Path(root).expanduser(), MARKET_STYLE_LAYOUT, "image folder")
    report = ParseReport()
    found = {}
    for split, names in SPLIT_FOLDERS.items():
        for n in names:
            if (folder / n).is_dir():
                found[split] = folder / n
                break
    junk = 0
    parts: dict[str, list[Sample]] = {"train": [], "query": [], "gallery": []}
    if found:
        for split, sub in found.items():
            parts[split], dropped = parse_market_folder_any(sub, report)
            junk += dropped
    else:
        samples, junk = parse_market_folder_any(folder, report)
        if test_fraction > 0:
            parts["train"], parts["query"], parts["gallery"] = split_by_identity(
                samples, test_fraction, split_seed, has_cameras=True)
        else:
            parts["train"] = samples
    report.log(f"market_style ({folder})")
    if report and not any(parts.values()):
        raise DatasetLayoutError(f"no file in {folder} has a Market-style name: {report.summary()}",
                                 MARKET_STYLE_LAYOUT)
    return _finish("market_style", parts["train"], parts["query"], parts["gallery"], True,
                   {"source": str(folder), "junk_pids": [-1], "junk_dropped": junk, "unparsed": report.as_dict()})


def parse_market_folder_any(folder: Path, report: ParseReport) -> tuple[list[Sample], int]:
    """Market-style names with any image extension and any camera number (stored 0-based)."""
    return parse_market_folder(folder, max_camera=None, report=report, extensions=IMAGE_EXTENSIONS)


def _read_csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """The non-empty rows of a CSV file with their line numbers (1-based, as an editor shows)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, row) for row in reader if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text CSV file (it is not UTF-8 text)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    return [(n, [cell.strip() for cell in row]) for n, row in rows]


DUPLICATE_POLICIES = ("error", "drop")


def _image_path(text: str, base: Path, allow_absolute: bool) -> tuple[str | None, str]:
    """The image path of a manifest row and, when it is refused, why."""
    if os.path.isabs(text):
        if not allow_absolute:
            return None, "absolute path (paths are relative to the manifest; allow_absolute=true accepts it)"
        return os.path.normpath(text), ""
    full = os.path.normpath(base / text)
    if os.path.commonpath([full, str(base)]) != str(base):
        return None, "points outside the manifest's folder (allow_absolute=true with an absolute path accepts it)"
    return full, ""


def _check_repeats(raw: list, csv_path: Path, duplicates: str) -> tuple[list, int]:
    """Refuse files listed under two identities/cameras or for training and testing; refuse or
    drop exact duplicate rows. Returns the rows to use and the number dropped."""
    first: dict[tuple[str, str], tuple[int, str, int]] = {}  # (path, split) -> (row, pid, cam)
    roles: dict[str, tuple[int, str, int, str]] = {}  # path -> (row, pid, cam, split)
    conflicts: list[str] = []
    repeated: list[tuple[int, int, str]] = []
    keep = []
    for lineno, path, pid, cam, split in raw:
        split_name = split or "train"
        seen = roles.get(path)
        if seen is not None:
            row0, pid0, cam0, split0 = seen
            name = os.path.relpath(path, csv_path.parent)
            if pid0 != pid:
                conflicts.append(f"{name} is listed under two identities (line {row0}: {pid0}, line {lineno}: {pid})")
            elif cam0 != cam:
                conflicts.append(f"{name} is listed under two cameras (line {row0}: {cam0}, line {lineno}: {cam})")
            elif (split0 == "train") != (split_name == "train"):
                conflicts.append(f"{name} is listed both for training and for testing (lines {row0} and {lineno})")
        else:
            roles[path] = (lineno, pid, cam, split_name)
        key = (path, split_name)
        if key in first:
            repeated.append((first[key][0], lineno, path))
            continue
        first[key] = (lineno, pid, cam)
        keep.append((path, pid, cam, split))
    if conflicts:
        more = f"; ... {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise DataError(f"{csv_path}: {len(conflicts)} conflicting row(s): {'; '.join(conflicts[:5])}{more}")
    if repeated and duplicates == "error":
        examples = "; ".join(f"lines {a} and {b} ({os.path.relpath(p, csv_path.parent)})" for a, b, p in repeated[:3])
        raise DataError(f"{csv_path}: {len(repeated)} duplicate row(s), e.g. {examples}. Remove them, or "
                        "read the manifest with duplicates=drop to keep the first of each")
    if repeated:
        logger.warning("%s: dropped %d duplicate row(s) (duplicates=drop)", csv_path, len(repeated))
    return keep, len(repeated)


@DATASETS.register("csv_manifest")
def read_csv_manifest(
    root: str | Path, *, test_fraction: float = 0.0, split_seed: int = 0, allow_absolute: bool = False,
    duplicates: str = "error",
) -> ReIDDataset:
    """A CSV manifest ``path,pid,camid[,split]``; ``root`` is the CSV file.

    ``allow_absolute``: accept absolute image paths. ``duplicates``: ``error`` (default) or
    ``drop`` for exact duplicate rows (see the module docstring).
    """
    if duplicates not in DUPLICATE_POLICIES:
        raise UsageError(f"duplicates must be one of {', '.join(DUPLICATE_POLICIES)}, got {duplicates!r}")
    csv_path = require_file(Path(root).expanduser(), CSV_LAYOUT, "CSV manifest")
    rows = _read_csv_rows(csv_path)
    if rows and rows[0][1][:2] == ["path", "pid"]:
        rows = rows[1:]
    if not rows:
        raise DatasetLayoutError(f"{csv_path}: no rows", CSV_LAYOUT)
    base = Path(os.path.normpath(csv_path.parent.absolute()))
    report = ParseReport()
    raw: list[tuple[int, str, str, int, str | None]] = []
    for lineno, row in rows:
        where = f"{csv_path.name}:line {lineno}"
        if len(row) not in (3, 4):
            report.add(where, f"expected 3 or 4 columns, got {len(row)}")
            continue
        cam_text = row[2]
        try:
            camid = UNKNOWN_CAMERA if cam_text in ("", "-1") else int(cam_text)
        except ValueError:
            report.add(where, f"camid {cam_text!r} is not an integer")
            continue
        split = row[3].lower() if len(row) == 4 else None
        if split is not None and split not in SPLIT_FOLDERS:
            report.add(where, f"split {row[3]!r} is not train/query/gallery")
            continue
        if not row[1]:
            report.add(where, "empty pid")
            continue
        image, why = _image_path(row[0], base, allow_absolute)
        if image is None:
            report.add(where, f"{row[0]}: {why}")
            continue
        raw.append((lineno, image, row[1], camid, split))
    if report:
        raise DataError(f"{csv_path}: {report.summary()}\nExpected:\n{CSV_LAYOUT}")
    raw, dropped = _check_repeats(raw, csv_path, duplicates)
    missing = [p for p, *_ in raw if not os.path.isfile(p)]
    if missing:
        raise DatasetLayoutError(f"{csv_path}: {len(missing)} listed image(s) do not exist, e.g. {missing[:3]}")
    # Integer ids stay as they are; text ids get numbers in sorted order.
    texts = [pid for _, pid, _, _ in raw]
    try:
        ids = {t: int(t) for t in texts}
    except ValueError:
        ids = relabel_map(texts)
    samples = [(Sample(p, ids[pid], cam), split) for p, pid, cam, split in raw]
    cams = {s.camid for s, _ in samples}
    has_cameras = UNKNOWN_CAMERA not in cams
    if not has_cameras and len(cams) > 1:
        logger.warning("%s: some rows have a camera and some do not; treating cameras as unknown", csv_path)
        samples = [(Sample(s.path, s.pid, UNKNOWN_CAMERA), split) for s, split in samples]
    if any(split is not None for _, split in samples):
        parts = {k: [s for s, split in samples if (split or "train") == k] for k in SPLIT_FOLDERS}
        train, query, gallery = parts["train"], parts["query"], parts["gallery"]
    elif test_fraction > 0:
        train, query, gallery = split_by_identity([s for s, _ in samples], test_fraction, split_seed, has_cameras)
    else:
        train, query, gallery = [s for s, _ in samples], [], []
    return _finish("csv_manifest", train, query, gallery, has_cameras,
                   {"source": str(csv_path), "duplicates_dropped": dropped,
                    "id_names": None if all(t.lstrip("-").isdigit() for t in texts) else sorted(ids, key=ids.get)})


def _identity_folder_samples(folder: Path, ids: dict[str, int]) -> list[Sample]:
    samples = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        for image in list_images(sub):
            samples.append(Sample(str(image), ids[sub.name], UNKNOWN_CAMERA))
    return samples


@DATASETS.register("identity_folders")
def read_identity_folders(
    root: str | Path, *, test_fraction: float = 0.0, split_seed: int = 0
) -> ReIDDataset:
    """One folder per identity (no cameras): ``has_cameras=False``."""
    folder = require_dir(Path(root).expanduser(), FOLDERS_LAYOUT, "identity folder root")
    split_dirs = {k: folder / k for k in SPLIT_FOLDERS if (folder / k).is_dir()}
    tops = list(split_dirs.values()) if split_dirs else [folder]
    names = sorted({p.name for top in tops for p in top.iterdir() if p.is_dir()})
    if not names:
        raise DatasetLayoutError(f"no identity folders in {folder}", FOLDERS_LAYOUT)
    ids = {name: i for i, name in enumerate(names)}
    if split_dirs:
        parts = {k: _identity_folder_samples(d, ids) for k, d in split_dirs.items()}
        train, query, gallery = parts.get("train", []), parts.get("query", []), parts.get("gallery", [])
    else:
        samples = _identity_folder_samples(folder, ids)
        if test_fraction > 0:
            train, query, gallery = split_by_identity(samples, test_fraction, split_seed, has_cameras=False)
        else:
            train, query, gallery = samples, [], []
    empty = [n for n in names if not any((top / n).is_dir() and list_images(top / n) for top in tops)]
    if empty:
        logger.warning("identity_folders: %d identity folder(s) hold no images, e.g. %s", len(empty), empty[:5])
    return _finish("identity_folders", train, query, gallery, False,
                   {"source": str(folder), "id_names": names, "empty_identities": empty})
