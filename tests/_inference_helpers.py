"""Helpers shared by the inference tests."""

from __future__ import annotations

import numpy as np


def rank1_map(q: np.ndarray, g: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray) -> tuple[float, float]:
    """Rank-1 and mAP of cosine-similarity retrieval, plain loops (queries and gallery come from
    different cameras, so no same-camera filtering is needed). Queries without a true match in
    the gallery are left out, as in the standard protocol."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    gn = g / np.linalg.norm(g, axis=1, keepdims=True)
    sim = qn.astype(np.float64) @ gn.astype(np.float64).T
    r1, aps = [], []
    for i in range(len(q)):
        order = np.argsort(-sim[i], kind="stable")
        match = g_pids[order] == q_pids[i]
        if not match.any():
            continue
        r1.append(float(match[0]))
        hits = np.cumsum(match)
        precision = hits / np.arange(1, len(match) + 1)
        aps.append(float((precision * match).sum() / match.sum()))
    return float(np.mean(r1)), float(np.mean(aps))


def plain_features(model, paths, size: tuple[int, int], batch_size: int = 64) -> np.ndarray:
    """(N, D) raw embeddings by the plainest loop there is (torchreid's test preprocessing, then
    the model in eval mode), independent of FeatureExtractor: the reference the extraction
    loop and the evaluation path are checked against."""
    import torch

    from omnireid.inference.preprocess import open_rgb, preprocess

    model.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(paths), batch_size):
            x = torch.stack([preprocess(open_rgb(p), size) for p in paths[start:start + batch_size]])
            chunks.append(model(x).embedding.numpy())
    return np.concatenate(chunks)
