"""Batched feature extraction from image files or PIL images."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from omnireid.inference.preprocess import (
    DEFAULT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    open_rgb,
    preprocess,
)

ImageLike = str | os.PathLike | object  # a path or a PIL image


@torch.no_grad()
def extract_features(
    model: nn.Module,
    images: Sequence[ImageLike],
    batch_size: int = 64,
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Embed images with ``model`` in eval mode.

    Args:
        images: paths or PIL images.
        size: (height, width) the images are resized to.
        device: defaults to the device of the model's parameters.
        progress: show a progress bar.

    Returns:
        ``(N, D)`` float32 array of raw (not normalised) embeddings, in input order.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    try:
        bar = tqdm(total=len(images), unit="img", disable=not progress, desc="extract")
        for start in range(0, len(images), batch_size):
            batch = [
                preprocess(open_rgb(x) if isinstance(x, (str, os.PathLike)) else x, size, mean, std)
                for x in images[start : start + batch_size]
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
