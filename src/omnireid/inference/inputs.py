"""Turning whatever a caller holds (paths, PIL images, arrays, tensors) into model input.

Every image goes through :func:`omnireid.data.transforms.preprocess`, the one preprocessing
implementation shared with evaluation, so the same crop gives the same embedding whichever way it
was handed in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from omnireid.data.decode import to_rgb
from omnireid.errors import UsageError
from omnireid.inference.preprocess import (
    DEFAULT_SIZE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    open_rgb,
    preprocess,
)

#: One image as accepted by the extractor.
ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor


def array_to_pil(arr: np.ndarray, bgr: bool = False, name: str = "array") -> Image.Image:
    """``(H, W)`` grayscale or ``(H, W, 3|4)`` uint8 array -> RGB PIL image.

    ``bgr=True`` reads three/four-channel arrays as BGR(A), the order OpenCV returns.
    """
    if arr.dtype != np.uint8:
        raise UsageError(f"{name}: image arrays must be uint8 (got {arr.dtype}); "
                         "convert with np.clip(x, 0, 255).astype(np.uint8)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr), mode="L").convert("RGB")
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise UsageError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, "
                         f"got shape {tuple(arr.shape)}")
    if bgr:
        arr = arr[:, :, [2, 1, 0, 3][: arr.shape[2]]]
    mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    return to_rgb(Image.fromarray(np.ascontiguousarray(arr), mode=mode))


def to_model_input(
    image: ImageInput,
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    bgr: bool = False,
    name: str = "image",
) -> torch.Tensor:
    """One image -> normalised ``(3, H, W)`` float32 tensor.

    Accepted kinds:

    * a path (``str`` / ``os.PathLike``): read and converted to RGB;
    * a PIL image of any mode;
    * a uint8 NumPy array ``(H, W)`` (grayscale) or ``(H, W, 3|4)`` (RGB, or BGR with ``bgr=True``);
    * a uint8 tensor ``(3, H, W)`` or ``(1, H, W)`` (as ``torchvision.io.read_image`` returns),
      RGB or BGR with ``bgr=True``;
    * a floating-point tensor ``(3, H, W)``: taken as already preprocessed model input and used
      unchanged (its size must be ``size``).
    """
    if isinstance(image, (str, os.PathLike)):
        pil = open_rgb(image)
    elif isinstance(image, Image.Image):
        pil = image
    elif isinstance(image, np.ndarray):
        pil = array_to_pil(image, bgr=bgr, name=name)
    elif isinstance(image, torch.Tensor):
        if image.is_floating_point():
            if image.ndim != 3 or image.shape[0] != 3 or tuple(image.shape[1:]) != tuple(size):
                raise UsageError(f"{name}: a float tensor is taken as preprocessed input and must "
                                 f"have shape (3, {size[0]}, {size[1]}), got {tuple(image.shape)}")
            return image.detach().to("cpu", torch.float32)
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise UsageError(f"{name}: a uint8 tensor must be (3, H, W) or (1, H, W), "
                             f"got {tuple(image.shape)}")
        pil = array_to_pil(image.detach().cpu().permute(1, 2, 0).numpy(), bgr=bgr, name=name)
    else:
        raise TypeError(f"{name}: unsupported image type {type(image).__name__}; pass a path, "
                        "PIL image, uint8 NumPy array or tensor")
    return preprocess(pil, size, mean, std)


def describe(image: ImageInput, index: int) -> str:
    """A short name for error messages: the path, or the position in the input list."""
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"image #{index} ({type(image).__name__})"
