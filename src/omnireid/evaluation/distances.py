"""Distance matrices between query and gallery features.

The formulas and the float32 arithmetic are those torchreid uses, so the same features give the
same matrix: squared euclidean ``|a|^2 + |b|^2 - 2 a.b`` and cosine ``1 - a.b / (|a| |b|)``.
Inputs may be NumPy arrays or torch tensors; results are NumPy float32 arrays.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from omnireid.errors import UsageError
from omnireid.registry import lookup

Metric = Literal["euclidean", "cosine"]


def _as_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(x).detach().to("cpu")
    if t.dim() != 2:
        raise UsageError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.float()
    return t.to(torch.float32)


def l2_normalize(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero). (N, D) -> (N, D) float32."""
    return F.normalize(_as_tensor(features, "features"), p=2, dim=1).numpy()


def flip_average(
    features: np.ndarray | torch.Tensor, flipped_features: np.ndarray | torch.Tensor
) -> np.ndarray:
    """Mean of the features of the images and of their horizontal mirror images.

    Both (N, D); returns (N, D) float32. Normalise afterwards if the metric needs it.
    """
    a = _as_tensor(features, "features")
    b = _as_tensor(flipped_features, "flipped_features")
    if a.shape != b.shape:
        raise UsageError(f"feature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    return ((a + b) / 2).numpy()


def euclidean_squared_distance(
    input1: np.ndarray | torch.Tensor, input2: np.ndarray | torch.Tensor
) -> np.ndarray:
    """Squared euclidean distances. (M, D), (N, D) -> (M, N) float32."""
    a = _as_tensor(input1, "input1")
    b = _as_tensor(input2, "input2")
    _check_dims(a, b)
    m, n = a.shape[0], b.shape[0]
    sq_a = a.pow(2).sum(dim=1, keepdim=True).expand(m, n)
    sq_b = b.pow(2).sum(dim=1, keepdim=True).expand(n, m).t()
    dist = sq_a + sq_b
    dist.addmm_(a, b.t(), beta=1, alpha=-2)
    return dist.numpy()


def cosine_distance(input1: np.ndarray | torch.Tensor, input2: np.ndarray | torch.Tensor) -> np.ndarray:
    """Cosine distances ``1 - cos``. (M, D), (N, D) -> (M, N) float32 in [0, 2]."""
    a = _as_tensor(input1, "input1")
    b = _as_tensor(input2, "input2")
    _check_dims(a, b)
    a = F.normalize(a, p=2, dim=1)
    b = F.normalize(b, p=2, dim=1)
    return (1 - torch.mm(a, b.t())).numpy()


#: The distance metrics of evaluation (``test.dist_metric``) and their functions. Gallery indexes
#: score with their own :data:`omnireid.inference.index.INDEX_METRICS` (inner product or squared L2).
DISTANCES = {"euclidean": euclidean_squared_distance, "cosine": cosine_distance}
DISTANCE_METRICS: tuple[str, ...] = tuple(DISTANCES)


def compute_distance_matrix(
    input1: np.ndarray | torch.Tensor,
    input2: np.ndarray | torch.Tensor,
    metric: Metric = "euclidean",
    normalize: bool = False,
) -> np.ndarray:
    """Distances between two feature sets. (M, D), (N, D) -> (M, N) float32.

    ``normalize=True`` scales the features to unit length first (torchreid's
    ``normalize_feature``), which makes squared euclidean equal to twice the cosine distance.
    """
    distance = lookup("distance metric", metric, DISTANCES)
    if normalize:
        input1, input2 = l2_normalize(input1), l2_normalize(input2)
    return distance(input1, input2)


def _check_dims(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape[1] != b.shape[1]:
        raise UsageError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
