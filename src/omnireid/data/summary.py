"""Split statistics of a dataset (the table ``omnireid data summary`` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from omnireid.data.records import UNKNOWN_CAMERA, ReIDDataset, Sample


@dataclass(frozen=True)
class SplitStats:
    """Counts for one split."""

    split: str
    num_ids: int
    num_images: int
    num_cameras: int  # 0 when cameras are unknown


def split_stats(split: str, samples: list[Sample]) -> SplitStats:
    cams = {s.camid for s in samples} - {UNKNOWN_CAMERA}
    return SplitStats(split, len({s.pid for s in samples}), len(samples), len(cams))


def summarize(dataset: ReIDDataset) -> list[SplitStats]:
    """Ids / images / cameras of train, query and gallery."""
    return [split_stats(name, getattr(dataset, name)) for name in ("train", "query", "gallery")]


def summary_dict(dataset: ReIDDataset) -> dict:
    return {"name": dataset.name, "has_cameras": dataset.has_cameras,
            "splits": [asdict(s) for s in summarize(dataset)]}
