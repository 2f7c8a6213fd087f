"""Test-time preprocessing, identical to torchreid's test transform.

torchreid evaluates with ``Resize((H, W))`` on a PIL image (bilinear), ``ToTensor`` (scale to
[0, 1]) and ``Normalize(mean, std)``. Published weights give published features only with this
exact pipeline, so evaluation, extraction and export all use it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from omnireid.data.decode import read_image, to_rgb
from omnireid.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from omnireid.errors import MissingFileError

DEFAULT_SIZE = (256, 128)  # (height, width)


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Open an image file as 8-bit RGB (see :func:`omnireid.data.decode.read_image`).

    Raises:
        FileNotFoundError: no such file.
        ImageDecodeError: (an ``OSError``) the file is empty, truncated, corrupt or not an image;
            the message names the file.
    """
    if not os.path.exists(path):
        raise MissingFileError(f"image not found: {path}")
    return read_image(path)


def preprocess(
    img: Image.Image,
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """PIL image -> normalised ``(3, H, W)`` float32 tensor (torchreid's test transform)."""
    height, width = size
    img = to_rgb(img)
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    x = x.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(m).div_(s)
