"""Test-time preprocessing for inference: open an image file, then torchreid's test transform.

The transform itself (:func:`omnireid.data.transforms.preprocess`: bilinear ``Resize((H, W))``
on a PIL image, scale to [0, 1], mean/std) lives in ``omnireid.data`` because training-time
evaluation uses it too; it is re-exported here with its defaults so inference code has one
import.
"""

from __future__ import annotations

import os

from PIL import Image

from omnireid.data.decode import read_image
from omnireid.data.transforms import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD, preprocess
from omnireid.errors import MissingFileError


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


__all__ = ["DEFAULT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "open_rgb", "preprocess"]
