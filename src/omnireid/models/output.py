"""The record every omnireid model returns, in training and in evaluation alike."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ReIDOutput(NamedTuple):
    """Model output.

    Attributes:
        embedding: ``(N, D)`` float tensor, the re-ID feature (not L2-normalised).
        logits: ``(N, num_classes)`` identity logits, or ``None`` when the model has no classifier.
    """

    embedding: torch.Tensor
    logits: torch.Tensor | None = None
