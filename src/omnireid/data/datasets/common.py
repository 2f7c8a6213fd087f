"""Helpers shared by the dataset readers: layout checks, name parsing, relabelling, split files."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omnireid.data.decode import IMAGE_EXTENSIONS
from omnireid.data.records import ReIDDataset, Sample
from omnireid.errors import DataError, DatasetLayoutError
from omnireid.files import write_json

logger = logging.getLogger(__name__)

# Market-1501 / DukeMTMC-reID file names: "0002_c1s1_000451_03.jpg" -> pid 2, camera 1.
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)")


@dataclass
class ParseReport:
    """Files a reader looked at but could not use, with the reason for each."""

    rejected: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str | Path, reason: str) -> None:
        self.rejected.append((str(path), reason))

    def __len__(self) -> int:
        return len(self.rejected)

    def summary(self, max_examples: int = 5) -> str:
        examples = "; ".join(f"{Path(p).name} ({why})" for p, why in self.rejected[:max_examples])
        more = "" if len(self.rejected) <= max_examples else f"; ... {len(self.rejected) - max_examples} more"
        return f"{len(self.rejected)} file(s) not used: {examples}{more}"

    def log(self, where: str) -> None:
        if self.rejected:
            logger.warning("%s: %s", where, self.summary())

    def as_dict(self) -> dict:
        return {"count": len(self.rejected), "examples": self.rejected[:20]}


def require_dir(path: Path, layout: str, what: str = "folder") -> Path:
    """Return ``path`` if it is a directory, else raise :class:`DatasetLayoutError`."""
    if not path.is_dir():
        raise DatasetLayoutError(f"{what} not found: {path}", layout)
    return path


def require_file(path: Path, layout: str, what: str = "file") -> Path:
    """Return ``path`` if it is a file, else raise :class:`DatasetLayoutError`."""
    if not path.is_file():
        raise DatasetLayoutError(f"{what} not found: {path}", layout)
    return path


def list_images(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic)."""
    exts = {e.lower() for e in extensions}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)


def relabel_map(pids: Iterable[int]) -> dict[int, int]:
    """Map each distinct id to 0..N-1 in sorted order."""
    return {pid: label for label, pid in enumerate(sorted(set(pids)))}


def relabel(samples: list[Sample]) -> list[Sample]:
    """Samples with their pids relabelled to 0..N-1 (sorted order of the original pids)."""
    mapping = relabel_map(s.pid for s in samples)
    return [Sample(s.path, mapping[s.pid], s.camid, s.dsetid) for s in samples]


def parse_market_folder(
    folder: Path,
    *,
    max_camera: int | None,
    max_pid: int | None = None,
    drop_pids: Sequence[int] = (-1,),
    report: ParseReport,
    extensions: Sequence[str] = (".jpg",),
) -> tuple[list[Sample], int]:
    """Read ``PID_cCAM...`` file names in ``folder``.

    Camera numbers are 1-based on disk and 0-based in the returned samples. Images whose pid is
    in ``drop_pids`` (Market-1501's junk id -1) are left out and counted; names that do not parse
    or have an out-of-range pid/camera are recorded in ``report``.

    Returns:
        (samples with original pids, number of images dropped as junk)
    """
    samples: list[Sample] = []
    dropped = 0
    for path in list_images(folder, extensions):
        match = MARKET_NAME.match(path.name)
        if not match:
            report.add(path, "name does not start with PID_cCAM")
            continue
        pid, cam = int(match.group(1)), int(match.group(2))
        if pid in drop_pids:
            dropped += 1
            continue
        if pid < 0 or (max_pid is not None and pid > max_pid):
            report.add(path, f"pid {pid} out of range")
            continue
        if cam < 1 or (max_camera is not None and cam > max_camera):
            report.add(path, f"camera {cam} out of range 1..{max_camera}")
            continue
        samples.append(Sample(str(path), pid, cam - 1))
    return samples, dropped


# ---------------------------------------------------------------------------------------------
# Split files (the JSON files written next to the small datasets)


def read_json(path: Path) -> object:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); delete it to have it rebuilt") from exc


def seeded_split_path(dataset_dir: Path, name: str, seed: int) -> Path:
    """Seed 0 uses torchreid's file name (so its existing split files are read as they are)."""
    if seed == 0:
        return dataset_dir / name
    stem, suffix = os.path.splitext(name)
    return dataset_dir / f"{stem}_seed{seed}{suffix}"


def load_or_create_splits(
    path: Path, create: Callable[[], list], what: str
) -> list:
    """Read the split file at ``path``; create and write it first if it does not exist."""
    if path.is_file():
        splits = read_json(path)
        if not isinstance(splits, list) or not splits:
            raise DataError(f"{path}: expected a non-empty JSON list of splits")
        logger.debug("%s: using split file %s", what, path)
        return splits
    splits = create()
    write_json(path, splits, indent=1)
    logger.info("%s: wrote %d splits to %s", what, len(splits), path)
    return splits


def pick_split(splits: list, split_id: int, path: Path) -> dict:
    if not 0 <= split_id < len(splits):
        raise DataError(f"split_id={split_id} out of range: {path} holds {len(splits)} splits (0..{len(splits) - 1})")
    return splits[split_id]


def resolve_path(stored: str, dataset_dir: Path, depth: int = 1) -> str:
    """Resolve a path stored in a split file.

    Relative paths are taken from ``dataset_dir``. Absolute paths (torchreid writes them) are used
    as they are when they exist; otherwise their last ``depth + 1`` components are looked up under
    ``dataset_dir``, so a data folder that moved since the file was written still works.
    """
    p = Path(stored)
    if not p.is_absolute():
        return str(dataset_dir / p)
    if p.exists():
        return stored
    tail = Path(*p.parts[-(depth + 1):])
    for candidate in (dataset_dir / tail, dataset_dir / p.name):
        if candidate.exists():
            return str(candidate)
    return stored


def relative_to(path: str, dataset_dir: Path) -> str:
    """``path`` relative to ``dataset_dir`` (POSIX form) for writing into split files."""
    return Path(os.path.relpath(path, dataset_dir)).as_posix()


def samples_from_triplets(items: list, dataset_dir: Path, depth: int = 1) -> list[Sample]:
    """Turn ``[path, pid, camid(, dsetid)]`` lists from a split file into samples."""
    out = []
    for item in items:
        if not isinstance(item, list | tuple) or len(item) < 3:
            raise DataError(f"split entry {item!r} is not [path, pid, camid]")
        out.append(Sample(resolve_path(item[0], dataset_dir, depth), int(item[1]), int(item[2])))
    return out


def triplets(samples: Sequence[Sample], dataset_dir: Path) -> list[list]:
    return [[relative_to(s.path, dataset_dir), s.pid, s.camid] for s in samples]


def dataset_from_split_file(
    name: str,
    split_path: Path,
    create: Callable[[], list],
    split_id: int,
    dataset_dir: Path,
    *,
    depth: int = 1,
    check: Sequence[str] = ("train", "query", "gallery"),
    extra: dict | None = None,
) -> ReIDDataset:
    """The dataset of split ``split_id`` of a split file holding ``[path, pid, camid]`` lists.

    Reads ``split_path`` (writing it with ``create()`` first when missing), resolves the stored
    paths (see :func:`resolve_path`; ``depth`` as there), and checks that the images of the
    ``check`` parts exist. ``extra`` is added to the dataset's split information.
    """
    splits = load_or_create_splits(split_path, create, name)
    split = pick_split(splits, split_id, split_path)
    parts = {k: samples_from_triplets(split[k], dataset_dir, depth) for k in ("train", "query", "gallery")}
    check_paths_exist([s for k in check for s in parts[k]], split_path)
    info = {"split_id": split_id, "num_splits": len(splits), "split_file": str(split_path)}
    return ReIDDataset(name, parts["train"], parts["query"], parts["gallery"],
                       extra={**info, **(extra or {})})


def check_paths_exist(samples: Sequence[Sample], source: Path, max_examples: int = 3) -> None:
    """Raise if images referenced by a split file are missing on disk."""
    missing = [s.path for s in samples if not os.path.exists(s.path)]
    if missing:
        raise DatasetLayoutError(
            f"{source}: {len(missing)} image(s) listed in the split file are missing, e.g. "
            + ", ".join(missing[:max_examples])
            + ". Delete the split file to rebuild it from the images on disk."
        )
