"""Embeddings for trackers: per-frame detections in, per-track appearance out.

A tracker calls :meth:`TrackBank.update` once per frame with the frame, its boxes and the track
id of each box. The boxes are embedded in one batch (:meth:`FeatureExtractor.embed_boxes`) and
each track keeps an aggregate embedding: the (quality-weighted) mean of its detections, or an
exponential moving average. Whole tracks can then be matched against a gallery (open set, with
the calibrated threshold) or against the tracks of another camera::

    bank = TrackBank(extractor, aggregate="ema", momentum=0.9)
    for frame_bgr, boxes, ids, scores in tracker_output:
        bank.update(frame_bgr, boxes, ids, quality=scores, bgr=True)
    assignments = bank.match_gallery(gallery)          # {track_id: Assignment}
    pairs = bank.match_tracks(other_camera_bank, threshold=0.3)

For a tracker that only wants appearance features (BoxMOT-style ``(frame_bgr, boxes_xyxy) ->
(N, D)``), :class:`BoxEmbedder` is that callable.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

AGGREGATES = ("mean", "ema")


class BoxEmbedder:
    """``(frame_bgr, boxes_xyxy) -> (N, D)`` float32 L2-normalised embeddings, for trackers.

    Args:
        extractor: a :class:`~omnireid.inference.FeatureExtractor` (any backend).
        bgr: frames arrive in OpenCV's BGR order (default) rather than RGB.

    ``boxes_xyxy`` is ``(N, >=4)``: pixel ``x1, y1, x2, y2`` first (extra columns such as
    confidence and class are ignored). :meth:`get_features` takes the same arguments in the
    order BoxMOT's appearance backends use, ``(xyxys, img)``.
    """

    def __init__(self, extractor: Any, bgr: bool = True) -> None:
        self.extractor = extractor
        self.bgr = bgr

    def __call__(self, frame: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(len(boxes_xyxy), -1)
        if boxes.shape[1] < 4:
            raise ValueError(f"boxes must be (N, >=4) x1, y1, x2, y2, got shape {boxes.shape}")
        emb = self.extractor.embed_boxes(frame, boxes[:, :4], bgr=self.bgr)
        return _unit(emb)

    def get_features(self, xyxys: np.ndarray, img: np.ndarray) -> np.ndarray:
        """BoxMOT's argument order: ``(boxes, frame)``."""
        return self(img, xyxys)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class Track:
    """One track's appearance.

    Attributes:
        track_id: the tracker's id.
        embedding: ``(D,)`` float32 L2-normalised aggregate.
        count: detections seen (including those with quality 0).
        weight: summed quality of the detections that contributed.
        first_frame, last_frame: frame indices of the first and latest detection.
    """

    track_id: Hashable
    embedding: np.ndarray
    count: int
    weight: float
    first_frame: int
    last_frame: int
    _sum: np.ndarray | None = None


@dataclass
class TrackMatch:
    """Two tracks judged to be the same person: ``a`` and ``b`` ids and their distance."""

    a: Hashable
    b: Hashable
    distance: float


class TrackBank:
    """Per-track aggregate embeddings, updated frame by frame.

    Args:
        extractor: a :class:`~omnireid.inference.FeatureExtractor`.
        aggregate: ``"mean"`` (quality-weighted mean of the normalised detection embeddings) or
            ``"ema"`` (exponential moving average: ``a <- (1 - w) a + w e`` with
            ``w = (1 - momentum) * quality``, then renormalised; the first detection sets it).
        momentum: EMA momentum (0.9 is the usual tracker value: about the last 10 frames count).
        max_age: forget tracks not seen for more than this many frames (``None``: never).
    """

    def __init__(self, extractor: Any, aggregate: str = "mean", momentum: float = 0.9,
                 max_age: int | None = None) -> None:
        if aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.extractor = extractor
        self.aggregate = aggregate
        self.momentum = momentum
        self.max_age = max_age
        self.tracks: dict[Hashable, Track] = {}
        self.frame_index = -1

    def __len__(self) -> int:
        return len(self.tracks)

    def update(
        self,
        frame: np.ndarray,
        boxes_xyxy: np.ndarray | Sequence[Sequence[float]],
        track_ids: Sequence[Hashable],
        quality: Sequence[float] | np.ndarray | None = None,
        frame_index: int | None = None,
        bgr: bool = False,
    ) -> np.ndarray:
        """Embed the detections of one frame and update their tracks.

        Args:
            frame: ``(H, W, 3)`` uint8 array (RGB, or BGR with ``bgr=True``) or a PIL image.
            boxes_xyxy: ``(N, 4)`` pixel boxes.
            track_ids: ``N`` track ids (any hashable: ints, strings).
            quality: ``N`` weights in ``[0, 1]`` (detection confidence, visibility ...);
                default 1. A detection of quality 0 does not change its track.
            frame_index: default: one more than the previous call.
            bgr: the frame is BGR.

        Returns:
            ``(N, D)`` float32 normalised embeddings of the detections, in box order.
        """
        ids = list(track_ids)
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4) if len(ids) else \
            np.zeros((0, 4))
        if len(boxes) != len(ids):
            raise ValueError(f"{len(boxes)} boxes but {len(ids)} track ids")
        if len(set(ids)) != len(ids):
            raise ValueError("a track id appears twice in one frame")
        q = np.ones(len(ids)) if quality is None else np.asarray(quality, dtype=np.float64)
        if q.shape != (len(ids),) or not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
            raise ValueError(f"quality must be {len(ids)} numbers in [0, 1]")
        self.frame_index = self.frame_index + 1 if frame_index is None else int(frame_index)
        emb = _unit(self.extractor.embed_boxes(frame, boxes, bgr=bgr)) if len(ids) else \
            np.zeros((0, int(getattr(self.extractor, "feature_dim", 0)) or 512), np.float32)
        if not np.isfinite(emb).all():
            raise ValueError(f"the model gave non-finite embeddings in frame {self.frame_index}")
        for tid, e, w in zip(ids, emb, q):
            self._observe(tid, e, float(w))
        if self.max_age is not None:
            stale = [t for t, tr in self.tracks.items()
                     if self.frame_index - tr.last_frame > self.max_age]
            for t in stale:
                del self.tracks[t]
        return emb

    def observe(self, track_id: Hashable, embedding: np.ndarray, quality: float = 1.0,
                frame_index: int | None = None) -> Track:
        """Update one track with an embedding computed elsewhere (``(D,)``)."""
        if frame_index is not None:
            self.frame_index = int(frame_index)
        return self._observe(track_id, _unit(np.asarray(embedding, np.float32)), quality)

    def _observe(self, tid: Hashable, e: np.ndarray, w: float) -> Track:
        track = self.tracks.get(tid)
        if track is None:
            track = Track(tid, e.copy(), 0, 0.0, self.frame_index, self.frame_index,
                          np.zeros_like(e, dtype=np.float64))
            self.tracks[tid] = track
        track.count += 1
        track.last_frame = self.frame_index
        if w <= 0:
            return track
        if self.aggregate == "mean":
            track._sum += w * e
            track.embedding = _unit(track._sum.astype(np.float32))
        elif track.weight == 0:
            track.embedding = e.copy()
        else:
            a = (1.0 - self.momentum) * w
            track.embedding = _unit((1.0 - a) * track.embedding + a * e)
        track.weight += w
        return track

    def embeddings(self, track_ids: Sequence[Hashable] | None = None
                   ) -> tuple[list[Hashable], np.ndarray]:
        """``(ids, (T, D) float32)``: the aggregate embeddings of the given (default: all)
        tracks that have one (a track seen only with quality 0 has none)."""
        ids = list(self.tracks) if track_ids is None else list(track_ids)
        ids = [t for t in ids if self.tracks[t].weight > 0]
        if not ids:
            return [], np.zeros((0, self._dim()), np.float32)
        return ids, np.stack([self.tracks[t].embedding for t in ids])

    def _dim(self) -> int:
        if self.tracks:
            return int(next(iter(self.tracks.values())).embedding.shape[0])
        return int(getattr(self.extractor, "feature_dim", 0)) or 512

    def forget(self, track_ids: Sequence[Hashable]) -> None:
        """Drop tracks (e.g. the tracker ended them)."""
        for t in track_ids:
            self.tracks.pop(t, None)

    def match_gallery(self, gallery: Any, threshold: float | None = None,
                      track_ids: Sequence[Hashable] | None = None, add_new: bool = False,
                      new_label: str = "person-{id}") -> dict[Hashable, Any]:
        """Assign whole tracks to a :class:`~omnireid.inference.gallery.Gallery` (open set).

        Returns:
            ``{track_id: Assignment}`` (see :meth:`Gallery.assign`; ``threshold`` defaults to
            the gallery's calibration).
        """
        ids, emb = self.embeddings(track_ids)
        if not ids:
            return {}
        gallery.check_model(self.extractor, "the gallery", allow_random=True)
        result = gallery.assign(emb, threshold, add_new=add_new, new_label=new_label,
                                metadata=[{"track_id": str(t)} for t in ids])
        return dict(zip(ids, result))

    def match_tracks(self, other: TrackBank | None = None, threshold: float = 0.3
                     ) -> list[TrackMatch]:
        """One-to-one matches between this bank's tracks and ``other``'s (default: among this
        bank's own tracks, never a track with itself), nearest pairs first, each within
        ``threshold`` (cosine distance)."""
        ids_a, a = self.embeddings()
        ids_b, b = (ids_a, a) if other is None else other.embeddings()
        if not ids_a or not ids_b:
            return []
        dist = 1.0 - a.astype(np.float64) @ b.astype(np.float64).T
        if other is None:
            dist[np.tril_indices(len(ids_a))] = np.inf  # each unordered pair once, no self
        return greedy_matches(dist, ids_a, ids_b, threshold)


def greedy_matches(dist: np.ndarray, ids_a: Sequence[Hashable], ids_b: Sequence[Hashable],
                   threshold: float) -> list[TrackMatch]:
    """Greedy one-to-one matching on an ``(A, B)`` distance matrix: repeatedly take the closest
    remaining pair within ``threshold``; each id is used once (with ``ids_a is ids_b`` an id
    appears in at most one pair)."""
    order = np.argsort(dist, axis=None, kind="stable")
    used_a: set = set()
    used_b: set = set()
    same_side = ids_a is ids_b
    out = []
    for flat in order:
        i, j = divmod(int(flat), dist.shape[1])
        d = dist[i, j]
        if not d <= threshold:
            break
        a, b = ids_a[i], ids_b[j]
        if a in used_a or b in used_b or (same_side and (a in used_b or b in used_a)):
            continue
        used_a.add(a)
        used_b.add(b)
        out.append(TrackMatch(a, b, float(d)))
    return out


__all__ = ["AGGREGATES", "BoxEmbedder", "Track", "TrackBank", "TrackMatch", "greedy_matches"]
