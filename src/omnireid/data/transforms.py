"""Image transforms for training (torchvision ``transforms.v2``) and testing (torchreid-exact).

Training transforms work on ``uint8`` tensors ``(3, H, W)``; the test transform works on PIL
images and reproduces torchreid's test preprocessing exactly (PIL bilinear resize, /255,
normalisation), so published weights give their published features.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_train_transform(
    height: int = 256,
    width: int = 128,
    *,
    random_flip: bool = True,
    random_crop: bool = False,
    random_erase: bool = False,
    color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    normalize: bool = True,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training augmentation pipeline (torchreid's options, as ``transforms.v2``).

    Args:
        height, width: output size.
        random_flip: horizontal flip with probability 0.5.
        random_crop: with probability 0.5 enlarge by 1.125 and crop back at a random place
            (torchreid's ``random_crop`` / ``Random2DTranslation``).
        random_erase: erase a random rectangle (area 2-40 %, aspect 0.3-3.3) with probability 0.5,
            filled with the mean colour (0 after normalisation).
        color_jitter: brightness 0.2, contrast 0.15.
        normalize: convert to float and normalise with ``mean``/``std``; ``False`` keeps uint8
            (then normalise the batch yourself, e.g. with :func:`normalize_batch`).

    Returns:
        a callable: uint8 tensor ``(3, h, w)`` -> float32 ``(3, height, width)`` (or uint8).
    """
    from torchvision.transforms import v2

    steps: list = [v2.Resize((height, width), antialias=True)]
    if random_flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if random_crop:
        big = (int(round(height * 1.125)), int(round(width * 1.125)))
        steps.append(v2.RandomApply([v2.Resize(big, antialias=True), v2.RandomCrop((height, width))], p=0.5))
    if color_jitter:
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.15))
    if normalize:
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
        if random_erase:
            steps.append(v2.RandomErasing(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=0.0))
    elif random_erase:
        raise ValueError("random_erase needs normalize=True (it erases to the mean colour)")
    return v2.Compose(steps)


class TestTransform:
    """torchreid's test preprocessing: PIL RGB -> bilinear resize to (w, h) -> /255 -> normalise.

    A picklable wrapper around :func:`omnireid.inference.preprocess.preprocess` (the one
    implementation of it). Call with a PIL image; returns float32 ``(3, height, width)``.
    """

    def __init__(self, height: int, width: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.height, self.width = height, width
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        from omnireid.inference.preprocess import preprocess

        return preprocess(img, (self.height, self.width), self.mean, self.std)

    def __repr__(self) -> str:
        return f"TestTransform(height={self.height}, width={self.width})"


def build_test_transform(
    height: int = 256, width: int = 128, *, mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> TestTransform:
    """The test transform (PIL image -> float32 ``(3, height, width)``), identical to torchreid's."""
    return TestTransform(height, width, mean, std)


def normalize_batch(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> normalised float32 ``(B, 3, H, W)``."""
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - m) / s
