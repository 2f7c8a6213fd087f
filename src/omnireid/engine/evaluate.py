"""The one evaluation path: a model on a dataset's query/gallery split -> rank metrics.

:func:`evaluate` embeds query and gallery through the one extraction loop
(:meth:`omnireid.inference.FeatureExtractor.extract`), builds distances (optionally re-ranked),
applies the dataset's protocol and averages random splits. ``omnireid eval``, ``fit()`` (its
periodic evaluation), ``omnireid demo`` and the reproduction all call it. Distances and metrics
come from :mod:`omnireid.evaluation`, which works on arrays only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from omnireid.data.loaders import BadImage
from omnireid.data.records import ReIDDataset, Sample
from omnireid.errors import DataError, UsageError
from omnireid.evaluation import PROTOCOLS, RankResult, SplitInputs, SplitResult, evaluate_splits
from omnireid.evaluation.distances import compute_distance_matrix, l2_normalize
from omnireid.evaluation.rank import removed_gallery
from omnireid.evaluation.rerank import re_ranking_features
from omnireid.inference.extractor import FeatureExtractor

logger = logging.getLogger(__name__)

TABLE_RANKS = (1, 5, 10, 20)


@dataclass
class ModelEvaluation:
    """Metrics of one model on one dataset (averaged over its splits when there are several).

    ``metrics``: flat dict (``rank1``, ``rank5``, ``rank10``, ``rank20``, ``mAP``, ``mINP``, ...,
    ``skipped_images``), rates in [0, 1]. ``query``/``gallery`` are the first split's readable
    samples, ``query_gallery_index`` (Q,) each query's position in that gallery (-1: absent) under
    the ``no_camera`` protocol. With ``keep_distmat``: ``distmat`` (Q, G) float32 and ``result``
    (:class:`~omnireid.evaluation.RankResult`, per-query AP) of the first split. ``splits``: the
    :class:`~omnireid.evaluation.SplitResult` when several splits were averaged.
    """

    dataset: str
    metrics: dict[str, float | int | str]
    protocol: str = "market"
    distmat: np.ndarray | None = field(default=None, repr=False)
    query: list[Sample] = field(default_factory=list, repr=False)
    gallery: list[Sample] = field(default_factory=list, repr=False)
    result: RankResult | None = field(default=None, repr=False)
    skipped: list[BadImage] = field(default_factory=list, repr=False)
    query_gallery_index: np.ndarray | None = field(default=None, repr=False)
    splits: SplitResult | None = field(default=None, repr=False)

    @property
    def num_splits(self) -> int:
        return len(self.splits.splits) if self.splits is not None else 1

    def removed(self) -> list[np.ndarray]:
        """For each query of the first split, the gallery indices its protocol leaves out of its
        ranked list (what ranked-list pictures grey out)."""
        q_pids, g_pids, q_cams, g_cams = _labels(self.query, self.gallery)
        qgi = self.query_gallery_index
        if qgi is None:
            qgi = np.full(len(self.query), -1)
        return [removed_gallery(self.protocol, i, q_pids[i], q_cams[i], g_pids, g_cams, qgi)
                for i in range(len(self.query))]


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


def resolve_protocol(protocol: str, dataset: ReIDDataset) -> str:
    """``auto`` -> ``market``, or ``no_camera`` for data without camera ids; a camera protocol on
    such data raises :class:`UsageError`."""
    if protocol != "auto" and protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; expected auto or one of {PROTOCOLS}")
    if protocol == "auto":
        return "market" if dataset.has_cameras else "no_camera"
    if not dataset.has_cameras and protocol in ("market", "cuhk03"):
        raise UsageError(f"dataset {dataset.name!r} has no camera ids: the {protocol} protocol's "
                         "same-camera filter cannot apply; use --protocol no_camera")
    return protocol


def evaluate(
    model: nn.Module | FeatureExtractor,
    dataset: ReIDDataset,
    *,
    splits: Iterable[ReIDDataset] = (),
    dist_metric: str = "euclidean",
    normalize_feature: bool = False,
    rerank: bool = False,
    flip: bool = False,
    protocol: str = "auto",
    max_rank: int = 50,
    size: tuple[int, int] | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    num_workers: int | None = None,
    channels_last: bool = False,
    keep_distmat: bool = False,
    progress: bool = False,
    on_error: str = "raise",
) -> ModelEvaluation:
    """Rank-k, mAP and mINP of ``model`` on ``dataset.query`` against ``dataset.gallery``.

    Args:
        model: a :class:`FeatureExtractor` giving raw embeddings (its backend, size and
            normalisation are used as they are), or a model, which is run eagerly (in eval mode,
            its train/eval mode restored afterwards) with ``size``, ``batch_size``, ``device``,
            ``num_workers`` and ``channels_last``; ``size`` defaults to the model's recorded
            input size (:func:`omnireid.models.weights.preprocessing_of`).
        splits: further random splits of the same data (VIPeR, GRID, CUHK01 ...); the metrics
            are then the mean over ``dataset`` and these (:func:`omnireid.evaluation.evaluate_splits`).
        dist_metric, normalize_feature: ``"euclidean"`` (squared) or ``"cosine"``, after
            optional L2 normalisation.
        rerank: k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3).
        flip: average each image's embedding with its mirror image's.
        protocol: ``"auto"`` (the Market-1501 protocol, or ``"no_camera"`` for data without
            camera ids), ``"market"``, ``"cuhk03"`` or ``"no_camera"`` (only the query image
            itself is left out of its gallery).
        on_error: ``"raise"`` on an unreadable image, or ``"skip"``: leave it out, list it in
            ``ModelEvaluation.skipped`` and count it in ``metrics["skipped_images"]``.

    Raises:
        DataError: the query or gallery set is empty (before or after leaving out unreadable
            images).
    """
    if on_error not in ("raise", "skip"):
        raise UsageError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    check_evaluable(dataset)
    protocol = resolve_protocol(protocol, dataset)
    was_training = isinstance(model, nn.Module) and model.training
    extractor = model if isinstance(model, FeatureExtractor) else FeatureExtractor(
        model, device=device, batch_size=batch_size, size=size, normalize=False, backend="eager",
        micro_batch=None, num_workers=num_workers, channels_last=channels_last)
    skipped: list[BadImage] = []
    inputs: list[SplitInputs] = []
    first: tuple | None = None
    try:
        for split in [dataset, *splits]:
            check_evaluable(split)
            qf, query = _embed(extractor, split.query, flip, f"{split.name} query", on_error,
                               skipped, progress)
            gf, gallery = _embed(extractor, split.gallery, flip, f"{split.name} gallery", on_error,
                                 skipped, progress)
            if skipped:
                check_evaluable(ReIDDataset(split.name, [], query, gallery, split.has_cameras, split.extra),
                                f"after leaving out {len({b.path for b in skipped})} unreadable image(s),")
            distmat = _distances(qf, gf, dist_metric, normalize_feature, rerank)
            q_pids, g_pids, q_cams, g_cams = _labels(query, gallery)
            qgi = _query_gallery_index(query, gallery) if protocol == "no_camera" else None
            inputs.append(SplitInputs(distmat, q_pids, g_pids, q_cams, g_cams, qgi))
            if first is None:
                first = (distmat, query, gallery, qgi)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    averaged = evaluate_splits(inputs, max_rank, protocol=protocol)
    result = averaged.splits[0]
    several = len(inputs) > 1
    metrics = _plain(averaged.summary(TABLE_RANKS) if several else result.summary(TABLE_RANKS))
    metrics["skipped_images"] = len({b.path for b in skipped})
    if skipped:
        logger.warning("%s: %d unreadable image(s) left out of the evaluation, e.g. %s", dataset.name,
                       metrics["skipped_images"], skipped[0].path)
    logger.info("%s: rank1 %.4f mAP %.4f", dataset.name, metrics.get("rank1", float("nan")),
                metrics.get("mAP", float("nan")))
    distmat, query, gallery, qgi = first
    return ModelEvaluation(dataset.name, metrics, protocol, distmat if keep_distmat else None,
                           list(query), list(gallery), result if keep_distmat else None, skipped,
                           qgi, averaged if several else None)


def _embed(extractor: FeatureExtractor, samples: Sequence[Sample], flip: bool, desc: str,
           on_error: str, skipped: list[BadImage], progress: bool) -> tuple[np.ndarray, list[Sample]]:
    """(M, D) raw embeddings of the readable ``samples`` and those samples; unreadable ones are
    appended to ``skipped`` (``on_error="skip"``) or raise."""
    out = extractor.extract([s.path for s in samples], progress=progress, strict=on_error == "raise",
                            flip=flip, desc=desc)
    seen = {b.path for b in skipped}
    for (i, message), exc in zip(out.failed, out.errors):
        bad = BadImage(str(samples[i].path), getattr(exc, "reason", "") or message)
        if bad.path not in seen:
            skipped.append(bad)
            seen.add(bad.path)
    return out.embeddings, [samples[i] for i in out.indices]


def _distances(qf: np.ndarray, gf: np.ndarray, metric: str, normalize: bool,
               rerank: bool) -> np.ndarray:
    """(Q, G) float32 distances, k-reciprocal re-ranked with ``rerank``."""
    if normalize:
        qf, gf = l2_normalize(qf), l2_normalize(gf)
    if rerank:
        return re_ranking_features(qf, gf, metric)
    return compute_distance_matrix(qf, gf, metric)


def _labels(query: Sequence[Sample], gallery: Sequence[Sample]) -> tuple[np.ndarray, ...]:
    """(q_pids, g_pids, q_camids, g_camids) int arrays."""
    return (np.array([s.pid for s in query]), np.array([s.pid for s in gallery]),
            np.array([s.camid for s in query]), np.array([s.camid for s in gallery]))


def _query_gallery_index(query: Sequence[Sample], gallery: Sequence[Sample]) -> np.ndarray:
    """(Q,) position of each query image in the gallery (the same file), -1 when absent."""
    where = {s.path: i for i, s in enumerate(gallery)}
    return np.array([where.get(s.path, -1) for s in query])


def _plain(summary: dict) -> dict[str, float | int | str]:
    return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in summary.items()}


__all__ = ["TABLE_RANKS", "ModelEvaluation", "check_evaluable", "evaluate", "resolve_protocol"]
