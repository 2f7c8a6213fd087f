"""Batched feature extraction with a PyTorch model (no normalisation, no fast paths).

:class:`omnireid.inference.FeatureExtractor` is the user-facing tool; this function is the plain
reference it is checked against, and what evaluation uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from omnireid.inference.inputs import ImageInput, describe, to_model_input
from omnireid.inference.preprocess import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from omnireid.progress import progress_bar


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Sequence[ImageInput],
    batch_size: int = 64,
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device | None = None,
    progress: bool = False,
    bgr: bool = False,
) -> np.ndarray:
    """Embed images with ``model`` in eval mode.

    Args:
        images: paths, PIL images, uint8 arrays or tensors (see
            :func:`omnireid.inference.inputs.to_model_input`).
        size: (height, width) the images are resized to.
        device: defaults to the device of the model's parameters.
        progress: show a progress bar.
        bgr: read 3-channel arrays/uint8 tensors as BGR.

    Returns:
        ``(N, D)`` float32 array of raw (not normalised) embeddings, in input order.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        bar = progress_bar(total=len(images), unit="img", enabled=progress, desc="extract")
        for start in range(0, len(images), batch_size):
            batch = [
                to_model_input(x, size, mean, std, bgr=bgr, name=describe(x, start + i))
                for i, x in enumerate(images[start : start + batch_size])
            ]
            out = model(torch.stack(batch).to(device))
            chunks.append(out.embedding.float().cpu().numpy())
            bar.update(len(batch))
        bar.close()
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, getattr(model, "feature_dim", 0)), dtype=np.float32)
    return np.concatenate(chunks)
