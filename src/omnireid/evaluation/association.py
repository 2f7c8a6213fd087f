"""Does an embedding tell tracks apart? Frame-to-frame consistency of per-detection embeddings.

Takes arrays (one row per detection: frame, track id, embedding) and returns numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrackConsistency:
    """Result of :func:`track_consistency`.

    Attributes:
        rate: share of eligible tracks that pass (first frame against last frame).
        passed, eligible: the counts behind ``rate``.
        single_frame: tracks seen in one frame only (not eligible).
        alone: tracks alone in their last frame (nothing to confuse them with; not eligible).
        pair_rate: share of all (track, frame, other frame) comparisons that pass.
        pair_passed, pair_total: the counts behind ``pair_rate``.
        failures: ids of the eligible tracks that failed.
    """

    rate: float
    passed: int
    eligible: int
    single_frame: int
    alone: int
    pair_rate: float
    pair_passed: int
    pair_total: int
    failures: list = field(default_factory=list)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _passes(anchor: np.ndarray, track: int, frame_ids: np.ndarray, frame_emb: np.ndarray) -> bool:
    d = 1.0 - frame_emb @ anchor
    same = frame_ids == track
    return bool(d[same].min() < d[~same].min())


def track_consistency(frames: np.ndarray, track_ids: np.ndarray,
                      embeddings: np.ndarray) -> TrackConsistency:
    """For each track, is its embedding in its first frame closer (cosine) to the same track in
    its last frame than to every other track in that last frame?

    Args:
        frames: ``(M,)`` frame index of each detection.
        track_ids: ``(M,)`` track id of each detection (one detection per track and frame).
        embeddings: ``(M, D)`` embeddings.

    Also counts, over every ordered pair of frames a track shares with at least one other track
    in the second frame, how often the same comparison passes (``pair_rate``).
    """
    frames = np.asarray(frames)
    tids = np.asarray(track_ids)
    emb = _unit(embeddings)
    if not len(frames) == len(tids) == len(emb):
        raise ValueError("frames, track ids and embeddings must have one row per detection")
    by_frame = {f: np.flatnonzero(frames == f) for f in np.unique(frames)}
    for f, rows in by_frame.items():
        if len(np.unique(tids[rows])) != len(rows):
            raise ValueError(f"frame {f} holds a track id twice")
    passed = eligible = single = alone = pair_passed = pair_total = 0
    failures = []
    for t in np.unique(tids):
        rows = np.flatnonzero(tids == t)
        rows = rows[np.argsort(frames[rows], kind="stable")]
        if len(rows) < 2:
            single += 1
            continue
        last = by_frame[frames[rows[-1]]]
        if len(last) < 2:
            alone += 1
        else:
            eligible += 1
            if _passes(emb[rows[0]], t, tids[last], emb[last]):
                passed += 1
            else:
                failures.append(t.item() if hasattr(t, "item") else t)
        for i in rows:
            for j in rows:
                if i == j:
                    continue
                other = by_frame[frames[j]]
                if len(other) < 2:
                    continue
                pair_total += 1
                pair_passed += _passes(emb[i], t, tids[other], emb[other])
    return TrackConsistency(passed / eligible if eligible else float("nan"), passed, eligible,
                            single, alone,
                            pair_passed / pair_total if pair_total else float("nan"),
                            pair_passed, pair_total, failures)


__all__ = ["TrackConsistency", "track_consistency"]
