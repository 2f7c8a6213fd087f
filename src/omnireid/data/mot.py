"""MOTChallenge sequences: frames with ground-truth boxes and track ids.

Source: Milan et al., "MOT16: A Benchmark for Multi-Object Tracking" (2016); MOT17 uses the
same layout. One folder per sequence::

    MOT17-02-FRCNN/
        seqinfo.ini          [Sequence] name, frameRate, seqLength, imWidth, imHeight, imExt
        img1/000001.jpg ...  the frames (a subset is fine: only frames present are read)
        gt/gt.txt            frame,track_id,left,top,width,height,consider,class,visibility

``gt.txt`` coordinates are 1-based pixels; a box becomes ``x1 = left - 1, y1 = top - 1,
x2 = x1 + width, y2 = y1 + height`` (0-based, exclusive end). Pedestrians are ``class == 1``
with ``consider == 1``; other classes (static person, occluder, vehicle ...) are left out unless
``pedestrians_only=False``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnireid.data.datasets.common import DatasetLayoutError

LAYOUT = """\
SEQUENCE/seqinfo.ini
SEQUENCE/img1/000001.jpg ...
SEQUENCE/gt/gt.txt     frame,track_id,left,top,width,height,consider,class,visibility"""

PEDESTRIAN = 1


@dataclass
class MotFrame:
    """The ground truth of one frame: its image, ``(N, 4)`` float64 boxes ``x1, y1, x2, y2``,
    ``(N,)`` int64 track ids and ``(N,)`` float64 visibility."""

    index: int
    image: Path
    boxes: np.ndarray
    track_ids: np.ndarray
    visibility: np.ndarray


@dataclass
class MotSequence:
    """A sequence: its name, frame rate, image size and the frames present, in order."""

    name: str
    folder: Path
    frame_rate: float
    width: int
    height: int
    frames: list[MotFrame] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return sum(len(f.track_ids) for f in self.frames)

    @property
    def track_ids(self) -> list[int]:
        """Every track id in the frames present, sorted."""
        return sorted({int(t) for f in self.frames for t in f.track_ids})


def read_mot_sequence(folder: str | Path, pedestrians_only: bool = True) -> MotSequence:
    """Read one sequence folder (see the module docstring for the layout).

    Raises:
        DatasetLayoutError: a file is missing (names it and shows the layout).
        ValueError: a malformed ``gt.txt`` line (names the file and line).
    """
    folder = Path(folder)
    info_path = folder / "seqinfo.ini"
    gt_path = folder / "gt" / "gt.txt"
    for p in (info_path, gt_path):
        if not p.is_file():
            raise DatasetLayoutError(f"MOT sequence file not found: {p}", LAYOUT)
    parser = configparser.ConfigParser()
    parser.read(info_path)
    if "Sequence" not in parser:
        raise ValueError(f"{info_path}: no [Sequence] section")
    info = parser["Sequence"]
    image_dir = folder / info.get("imDir", "img1")
    ext = info.get("imExt", ".jpg")
    rows: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
    for lineno, line in enumerate(gt_path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(",")
        try:
            frame, tid = int(float(parts[0])), int(float(parts[1]))
            left, top, w, h = (float(v) for v in parts[2:6])
            consider = int(float(parts[6])) if len(parts) > 6 else 1
            cls = int(float(parts[7])) if len(parts) > 7 else PEDESTRIAN
            vis = float(parts[8]) if len(parts) > 8 else 1.0
        except (ValueError, IndexError):
            raise ValueError(f"{gt_path}:{lineno}: expected frame,track_id,left,top,width,"
                             f"height[,consider,class,visibility], got {line!r}") from None
        if pedestrians_only and (consider != 1 or cls != PEDESTRIAN):
            continue
        if w <= 0 or h <= 0:
            continue
        rows.setdefault(frame, []).append((tid, left - 1, top - 1, w, h, vis))
    width, height = int(info.get("imWidth", 0)), int(info.get("imHeight", 0))
    if width > 0 and height > 0:  # boxes wholly outside the image show nobody
        rows = {f: [r for r in items if r[1] < width and r[2] < height and r[1] + r[3] > 0
                    and r[2] + r[4] > 0] for f, items in rows.items()}
    frames = []
    for image in sorted(image_dir.glob(f"*{ext}")):
        try:
            index = int(image.stem)
        except ValueError:
            continue
        items = sorted(rows.get(index, []))
        boxes = np.array([[x, y, x + w, y + h] for _, x, y, w, h, _ in items],
                         dtype=np.float64).reshape(-1, 4)
        frames.append(MotFrame(index, image, boxes,
                               np.array([r[0] for r in items], dtype=np.int64),
                               np.array([r[5] for r in items], dtype=np.float64)))
    if not frames:
        raise DatasetLayoutError(f"no frames ({ext}) in {image_dir}", LAYOUT)
    return MotSequence(info.get("name", folder.name), folder, float(info.get("frameRate", 30)),
                       width, height, frames)


def find_mot_sequences(root: str | Path) -> list[Path]:
    """Sequence folders (holding ``seqinfo.ini``) directly under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"MOT folder not found: {root}", LAYOUT)
    return sorted(p for p in root.iterdir() if (p / "seqinfo.ini").is_file())


__all__ = ["MotFrame", "MotSequence", "find_mot_sequences", "read_mot_sequence"]
