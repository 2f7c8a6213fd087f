"""Evaluation of a model on a dataset's query/gallery split, for use during and after training.

Feature extraction happens here; distances and rank metrics come from
:mod:`omnireid.evaluation` (this module computes no distance or metric itself).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from omnireid.data.loaders import BadImage
from omnireid.data.records import ReIDDataset, Sample
from omnireid.errors import DataError
from omnireid.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class ModelEvaluation:
    """Metrics of one model on one dataset.

    ``metrics``: flat dict (``rank1``, ``rank5``, ``rank10``, ``rank20``, ``mAP``, ...), values
    in [0, 1]. ``distmat``: (Q, G) float32 distances and ``result`` the full
    :class:`omnireid.evaluation.RankResult` (per-query AP), when asked for.
    """

    dataset: str
    metrics: dict[str, float | int | str]
    distmat: np.ndarray | None = field(default=None, repr=False)
    query: list[Sample] = field(default_factory=list, repr=False)
    gallery: list[Sample] = field(default_factory=list, repr=False)
    result: Any = field(default=None, repr=False)
    skipped: list[BadImage] = field(default_factory=list, repr=False)


@torch.no_grad()
def extract_split(
    model: nn.Module,
    samples: Sequence[Sample],
    *,
    height: int,
    width: int,
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "extract",
    on_error: str = "raise",
    skipped: list[BadImage] | None = None,
) -> np.ndarray:
    """Embed ``samples`` with the test transform; returns (N, D) float32 raw embeddings.

    With ``on_error="skip"`` unreadable images are left out (the rows follow the readable
    samples in order) and appended to ``skipped``.
    """
    from omnireid.data.loaders import build_test_loader

    loader = build_test_loader(samples, height=height, width=width, batch_size=batch_size,
                               num_workers=num_workers, on_error=on_error)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for batch in progress_bar(loader, desc=desc, unit="batch", enabled=progress):
            if skipped is not None:
                skipped.extend(batch.skipped)
            if len(batch) == 0:
                continue
            x = batch.images.to(device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            chunks.append(model(x).embedding.float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def check_evaluable(dataset: ReIDDataset, where: str | None = None) -> None:
    """Raise :class:`DataError` unless ``dataset`` has both query and gallery images."""
    if dataset.query and dataset.gallery:
        return
    source = dataset.extra.get("source")
    raise DataError(
        f"{where or 'dataset'} {dataset.name!r}{f' ({source})' if source else ''} has "
        f"{len(dataset.query)} query and {len(dataset.gallery)} gallery images: evaluation needs both "
        "(a split with query/gallery images, e.g. the split column of a CSV manifest or the reader "
        "option test_fraction)")


def evaluate_model(
    model: nn.Module,
    dataset: ReIDDataset,
    *,
    height: int = 256,
    width: int = 128,
    batch_size: int = 128,
    dist_metric: str = "euclidean",
    normalize_feature: bool = False,
    device: torch.device | str = "cpu",
    num_workers: int = 0,
    channels_last: bool = False,
    keep_distmat: bool = False,
    progress: bool = False,
    on_error: str = "raise",
) -> ModelEvaluation:
    """Rank-k and mAP of ``model`` on ``dataset.query`` against ``dataset.gallery``.

    The protocol follows the dataset: same-camera matches of the query identity are left out
    (Market-1501 protocol), or only the query image itself when the data has no cameras.
    With ``on_error="skip"`` unreadable images are left out of query and gallery, listed in
    ``ModelEvaluation.skipped`` and counted in ``metrics["skipped_images"]``.

    Raises:
        DataError: the query or gallery set is empty (before or after leaving out unreadable
            images).
    """
    from omnireid.evaluation import compute_distance_matrix, evaluate_rank

    check_evaluable(dataset)
    skipped: list[BadImage] = []
    kw = dict(height=height, width=width, batch_size=batch_size, num_workers=num_workers,
              device=device, channels_last=channels_last, progress=progress, on_error=on_error,
              skipped=skipped)
    qf = extract_split(model, dataset.query, desc=f"{dataset.name} query", **kw)
    gf = extract_split(model, dataset.gallery, desc=f"{dataset.name} gallery", **kw)
    if skipped:
        bad = {b.path for b in skipped}
        logger.warning("%s: %d unreadable image(s) left out of the evaluation, e.g. %s", dataset.name,
                       len(bad), skipped[0].path)
        dataset = ReIDDataset(dataset.name, dataset.train, [q for q in dataset.query if q.path not in bad],
                              [g for g in dataset.gallery if g.path not in bad], dataset.has_cameras,
                              dataset.extra)
        check_evaluable(dataset, "after leaving out unreadable images,")
    distmat = compute_distance_matrix(qf, gf, metric=dist_metric, normalize=normalize_feature)
    q_pids = np.array([s.pid for s in dataset.query])
    g_pids = np.array([s.pid for s in dataset.gallery])
    q_cams = np.array([s.camid for s in dataset.query])
    g_cams = np.array([s.camid for s in dataset.gallery])
    if dataset.has_cameras:
        result = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    else:
        index = {s.path: i for i, s in enumerate(dataset.gallery)}
        qgi = np.array([index.get(s.path, -1) for s in dataset.query])
        result = evaluate_rank(distmat, q_pids, g_pids, None, None, protocol="no_camera",
                               query_gallery_index=qgi)
    metrics = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in result.summary().items()}
    metrics["skipped_images"] = len({b.path for b in skipped})
    logger.info("%s: rank1 %.4f mAP %.4f", dataset.name, metrics.get("rank1", float("nan")),
                metrics.get("mAP", float("nan")))
    return ModelEvaluation(dataset.name, metrics, distmat if keep_distmat else None,
                           list(dataset.query), list(dataset.gallery), result if keep_distmat else None,
                           skipped)


__all__ = ["ModelEvaluation", "check_evaluable", "evaluate_model", "extract_split"]
