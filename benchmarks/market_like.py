"""Synthetic features with Market-1501's shape and statistics, for evaluation benchmarks.

Market-1501's test split has 750 identities seen by 6 cameras: 3368 query images (about one per
identity and camera) and 19732 gallery images (13115 of the test identities, the rest distractors
and junk). Here every identity gets a random centre in 512-d, every camera a small shared offset,
and every image independent noise, so that rank-1 and mAP land in the range real models reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SplitFeatures:
    """Query and gallery features with labels. ``*_feats``: (N, 512) float32."""

    q_feats: np.ndarray
    g_feats: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray


def make_market_like(
    num_query: int = 3368,
    num_gallery: int = 19732,
    num_ids: int = 750,
    num_cams: int = 6,
    dim: int = 512,
    num_distractors: int = 6617,
    noise: float = 1.65,
    seed: int = 0,
) -> SplitFeatures:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim)).astype(np.float32)
    cam_bias = 0.35 * rng.standard_normal((num_cams, dim)).astype(np.float32)

    # queries: cycle through identities, each on a random camera
    q_pids = np.arange(num_query) % num_ids
    q_camids = rng.integers(0, num_cams, num_query)
    # gallery: images of the test identities (uneven counts), then distractors
    num_id_images = num_gallery - num_distractors
    weights = rng.gamma(2.0, 1.0, num_ids)
    id_pids = rng.choice(num_ids, size=num_id_images, p=weights / weights.sum())
    id_pids[:num_ids] = np.arange(num_ids)  # every identity appears at least once
    id_cams = rng.integers(0, num_cams, num_id_images)

    def draw(pids: np.ndarray, cams: np.ndarray) -> np.ndarray:
        x = centres[pids] + cam_bias[cams]
        x += noise * rng.standard_normal(x.shape).astype(np.float32)
        return np.maximum(x, 0)  # post-ReLU-like, as OSNet features are

    q_feats = draw(q_pids, q_camids)
    g_id = draw(id_pids, id_cams)
    # distractors: people no query shows, each with a centre of its own; their id is -1
    dis_pids = np.full(num_distractors, -1)
    dis_cams = rng.integers(0, num_cams, num_distractors)
    dis_centres = rng.standard_normal((num_distractors, dim)).astype(np.float32)
    g_dis = dis_centres + cam_bias[dis_cams]
    g_dis = np.maximum(g_dis + noise * rng.standard_normal(g_dis.shape).astype(np.float32), 0)
    order = rng.permutation(num_gallery)
    g_feats = np.concatenate([g_id, g_dis])[order]
    g_pids = np.concatenate([id_pids, dis_pids])[order]
    g_camids = np.concatenate([id_cams, dis_cams])[order]
    return SplitFeatures(
        q_feats.astype(np.float32),
        g_feats.astype(np.float32),
        q_pids.astype(np.int64),
        g_pids.astype(np.int64),
        q_camids.astype(np.int64),
        g_camids.astype(np.int64),
    )
