"""Training losses: label-smoothed cross-entropy, batch-hard triplet, and weighted sums.

Each loss is registered in ``LOSSES`` under its name with the model output it reads
(``logits`` or ``embedding``). :func:`build_loss` makes a weighted sum from plain values::

    criterion = build_loss({"softmax": 1.0, "triplet": 1.0}, label_smooth=0.1, margin=0.3)
    out = criterion(model(images), pids)   # out.total (scalar), out.parts {"softmax": ..., ...}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from omnireid.errors import UsageError
from omnireid.models.output import ReIDOutput
from omnireid.registry import Registry


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against ``(1 - eps) * one_hot + eps / K`` targets (Szegedy et al. 2016).

    Args:
        epsilon: smoothing (0.1 in the OSNet recipes; 0 gives plain cross-entropy).

    Call with ``logits (N, K)`` (any float dtype; computed in float32) and ``targets (N,)``
    int64; returns the mean loss, a scalar.
    """

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon < 1.0:
            raise UsageError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_probs = F.log_softmax(logits.float(), dim=1)
        nll = -log_probs.gather(1, targets.view(-1, 1)).squeeze(1)
        uniform = -log_probs.mean(dim=1)
        return ((1.0 - self.epsilon) * nll + self.epsilon * uniform).mean()


class BatchHardTripletLoss(nn.Module):
    """Triplet loss with batch-hard mining (Hermans et al. 2017).

    For each anchor the farthest positive and the nearest negative in the batch (Euclidean
    distance) give ``max(0, d_ap - d_an + margin)``; the loss is the mean over anchors.
    Batches need several images per identity (P x K sampling).

    Call with ``embeddings (N, D)`` and ``targets (N,)``; returns a scalar.
    """

    def __init__(self, margin: float = 0.3) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = embeddings.float()
        sq = (x * x).sum(dim=1, keepdim=True)
        dist = (sq + sq.t() - 2.0 * (x @ x.t())).clamp(min=1e-12).sqrt()
        same = targets.view(-1, 1) == targets.view(1, -1)
        d_ap = dist.masked_fill(~same, float("-inf")).max(dim=1).values
        d_an = dist.masked_fill(same, float("inf")).min(dim=1).values
        return F.relu(d_ap - d_an + self.margin).mean()


@dataclass(frozen=True)
class LossSpec:
    """A registered loss: its builder and which field of :class:`ReIDOutput` it reads."""

    build: Callable[..., nn.Module]
    reads: str  # "logits" or "embedding"


LOSSES: Registry = Registry("loss")
LOSSES.add("softmax", LossSpec(lambda label_smooth=0.1, **_: CrossEntropyLabelSmooth(label_smooth), "logits"))
LOSSES.add("triplet", LossSpec(lambda margin=0.3, **_: BatchHardTripletLoss(margin), "embedding"))


@dataclass
class LossOutput:
    """``total``: the weighted sum (scalar tensor); ``parts``: each loss unweighted (scalars)."""

    total: torch.Tensor
    parts: dict[str, torch.Tensor]


class WeightedLoss(nn.Module):
    """``sum_i weight_i * loss_i(output.<reads_i>, pids)`` over the losses with weight > 0."""

    def __init__(self, weights: Mapping[str, float], **options: float) -> None:
        super().__init__()
        self.weights = {name: float(w) for name, w in weights.items() if w > 0}
        if not self.weights:
            raise UsageError("build_loss needs at least one loss with a positive weight")
        self.reads = {}
        self.terms = nn.ModuleDict()
        for name in self.weights:
            spec: LossSpec = LOSSES.get(name)
            self.terms[name] = spec.build(**options)
            self.reads[name] = spec.reads

    @property
    def needs_logits(self) -> bool:
        return "logits" in self.reads.values()

    def forward(self, output: ReIDOutput, pids: torch.Tensor) -> LossOutput:
        parts = {}
        total = None
        for name, weight in self.weights.items():
            inp = getattr(output, self.reads[name])
            if inp is None:
                raise UsageError(f"loss {name!r} needs model {self.reads[name]}, which the model did not return "
                                 "(build it with num_classes > 0)")
            value = self.terms[name](inp, pids)
            parts[name] = value
            total = weight * value if total is None else total + weight * value
        assert total is not None
        return LossOutput(total, parts)


def build_loss(weights: Mapping[str, float], *, label_smooth: float = 0.1, margin: float = 0.3) -> WeightedLoss:
    """A weighted sum of registered losses, e.g. ``{"softmax": 1.0, "triplet": 0.5}``."""
    return WeightedLoss(weights, label_smooth=label_smooth, margin=margin)


__all__ = ["BatchHardTripletLoss", "CrossEntropyLabelSmooth", "LOSSES", "LossOutput", "LossSpec",
           "WeightedLoss", "build_loss"]
