"""Multi-source training sets and ``combineall``.

``combine_datasets`` puts several datasets into one: every sample keeps the index of its source
in ``dsetid``; identities and cameras of each source are moved to their own ranges so that no two
sources share an id or a camera. ``combine_all`` turns a dataset's query and gallery into extra
training identities (as torchreid's ``combineall=True``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from omnireid.data.records import UNKNOWN_CAMERA, ReIDDataset, Sample
from omnireid.errors import UsageError

logger = logging.getLogger(__name__)


def _contiguous(values: set[int]) -> dict[int, int]:
    return {v: i for i, v in enumerate(sorted(values))}


def combine_datasets(datasets: Sequence[ReIDDataset], name: str | None = None) -> ReIDDataset:
    """Combine datasets for multi-source training.

    Training ids of source ``i`` become ``offset_i + 0..N_i-1`` (relabelled in sorted order), its
    cameras ``cam_offset_i + 0..C_i-1`` and ``dsetid = i``. Query and gallery are concatenated
    with their ids and cameras shifted the same way (ids by the running maximum + 1), so a
    query can only match images of its own source. Unknown cameras stay unknown.

    Returns:
        the combined dataset; ``extra["sources"]`` lists the source names and
        ``extra["offsets"]`` the id/camera offsets of each source.
    """
    if not datasets:
        raise UsageError("combine_datasets needs at least one dataset")
    train: list[Sample] = []
    query: list[Sample] = []
    gallery: list[Sample] = []
    pid_offset = cam_offset = test_pid_offset = 0
    offsets = []
    for index, ds in enumerate(datasets):
        pid_map = _contiguous({s.pid for s in ds.train})
        all_cams = {s.camid for s in ds.train + ds.query + ds.gallery} - {UNKNOWN_CAMERA}
        cam_map = _contiguous(all_cams)

        def cam(c: int, cam_map: dict[int, int] = cam_map, base: int = cam_offset) -> int:
            return UNKNOWN_CAMERA if c == UNKNOWN_CAMERA else base + cam_map[c]

        train += [Sample(s.path, pid_offset + pid_map[s.pid], cam(s.camid), index) for s in ds.train]
        test = ds.query + ds.gallery
        # Shift so the smallest test id of this source (maybe -1 or 0) lands on test_pid_offset.
        low = min((s.pid for s in test), default=0)
        shift = test_pid_offset - min(low, 0)
        query += [Sample(s.path, s.pid + shift, cam(s.camid), index) for s in ds.query]
        gallery += [Sample(s.path, s.pid + shift, cam(s.camid), index) for s in ds.gallery]
        offsets.append({"name": ds.name, "train_pid": pid_offset, "test_pid": shift, "camera": cam_offset})
        pid_offset += len(pid_map)
        cam_offset += len(cam_map)
        test_pid_offset = max((s.pid + shift for s in test), default=test_pid_offset - 1) + 1
    return ReIDDataset(
        name=name or "+".join(ds.name for ds in datasets),
        train=train,
        query=query,
        gallery=gallery,
        has_cameras=all(ds.has_cameras for ds in datasets),
        extra={"sources": [ds.name for ds in datasets], "offsets": offsets},
    )


def combine_all(dataset: ReIDDataset) -> ReIDDataset:
    """Train on everything: train (+ a validation list if the reader kept one) + query + gallery.

    Query/gallery ids in ``dataset.extra["junk_pids"]`` (e.g. Market-1501's 0 and -1) are left
    out; the others are relabelled after the training ids in sorted order. An image listed twice
    (CUHK03's classic splits use the same list for query and gallery) is added once.
    """
    junk = set(dataset.extra.get("junk_pids", []))
    train = list(dataset.train) + list(dataset.extra.get("val", []))
    num_train = len({s.pid for s in train})
    test_pids = {s.pid for s in dataset.query + dataset.gallery if s.pid not in junk}
    mapping = {pid: num_train + i for i, pid in enumerate(sorted(test_pids))}
    seen = {s.path for s in train}
    skipped = 0
    for s in dataset.query + dataset.gallery:
        if s.pid in junk:
            skipped += 1
            continue
        if s.path in seen:
            continue
        seen.add(s.path)
        train.append(Sample(s.path, mapping[s.pid], s.camid, s.dsetid))
    logger.info("combineall %s: %d training images of %d ids (%d junk images left out)",
                dataset.name, len(train), num_train + len(mapping), skipped)
    extra = dict(dataset.extra, combineall=True)
    extra.pop("val", None)
    return ReIDDataset(dataset.name, train, dataset.query, dataset.gallery, dataset.has_cameras, extra)
