"""Image transforms for training (torchvision ``transforms.v2``) and testing (torchreid-exact).

Training transforms work on ``uint8`` tensors ``(3, H, W)``; the test transform works on PIL
images and reproduces torchreid's test preprocessing exactly (PIL bilinear resize, /255,
mean/std standardisation), so published weights give their published features.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from omnireid.data.decode import to_rgb
from omnireid.errors import UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = (256, 128)  # (height, width) of the test transform


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
    standardize: bool = True,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training augmentation pipeline (torchreid's options, as ``transforms.v2``).

    Args:
        height, width: output size.
        random_flip: horizontal flip with probability 0.5.
        random_crop: with probability 0.5 enlarge by 1.125 and crop back at a random place
            (torchreid's ``random_crop`` / ``Random2DTranslation``).
        random_erase: erase a random rectangle (area 2-40 %, aspect 0.3-3.3) with probability 0.5,
            filled with the mean colour (0 after standardisation).
        color_jitter: brightness 0.2, contrast 0.15.
        standardize: convert to float and standardise with ``mean``/``std`` (``(x - mean) / std``);
            ``False`` keeps uint8 (then standardise the batch yourself, e.g. with
            :func:`standardize_batch`). (L2 normalisation of features is
            :func:`omnireid.evaluation.distances.l2_normalize`, a different thing.)

    Returns:
        a callable: uint8 tensor ``(3, h, w)`` -> float32 ``(3, height, width)`` (or uint8).
    """
    steps: list = [v2.Resize((height, width), antialias=True)]
    if random_flip:
        steps.append(v2.RandomHorizontalFlip(0.5))
    if random_crop:
        big = (int(round(height * 1.125)), int(round(width * 1.125)))
        steps.append(v2.RandomApply([v2.Resize(big, antialias=True), v2.RandomCrop((height, width))], p=0.5))
    if color_jitter:
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.15))
    if standardize:
        steps.append(NormalizeUint8(mean, std))
        if random_erase:
            steps.append(RandomErase(p=0.5, scale=(0.02, 0.4), ratio=(0.3, 1 / 0.3), value=0.0))
    elif random_erase:
        raise UsageError("random_erase needs standardize=True (it erases to the mean colour)")
    return v2.Compose(steps)


class NormalizeUint8:
    """uint8 ``(3, H, W)`` -> float32 ``(x / 255 - mean) / std`` in one fused multiply-add.

    Same result as ``v2.ToDtype(float32, scale=True)`` + ``v2.Normalize`` (to float rounding),
    about 20x cheaper on CPU.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.scale = 1.0 / (255.0 * s)
        self.bias = -m / s

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img.to(torch.float32).mul_(self.scale).add_(self.bias)

    def __repr__(self) -> str:
        return "NormalizeUint8()"


class RandomErase:
    """Random erasing (Zhong et al., AAAI 2020) on a float ``(C, H, W)`` tensor.

    With probability ``p``: up to 10 tries to draw a rectangle of ``scale`` x area and aspect
    ratio in ``ratio`` (log-uniform) that fits, then fill it with ``value``. Uses torch's RNG, so
    DataLoader worker seeding makes it reproducible. Semantics of ``v2.RandomErasing``.
    """

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.4),
                 ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> None:
        self.p, self.scale, self.value = p, scale, value
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return img
        H, W = img.shape[-2:]
        for _ in range(10):
            u = torch.rand(3).tolist()
            area = H * W * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0])
            aspect = math.exp(self.log_ratio[0] + (self.log_ratio[1] - self.log_ratio[0]) * u[1])
            h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if 0 < h < H and 0 < w < W:
                y = int(torch.randint(0, H - h + 1, ()))
                x = int(torch.randint(0, W - w + 1, ()))
                img[..., y:y + h, x:x + w] = self.value
                return img
        return img

    def __repr__(self) -> str:
        return f"RandomErase(p={self.p}, scale={self.scale})"


def preprocess(
    img: Image.Image,
    size: tuple[int, int] = DEFAULT_SIZE,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """PIL image -> standardised (mean/std) ``(3, H, W)`` float32 tensor (torchreid's test transform)."""
    height, width = size
    img = to_rgb(img)
    if img.size != (width, height):
        img = img.resize((width, height), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    x = x.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(m).div_(s)


class TestTransform:
    """torchreid's test preprocessing: PIL RGB -> bilinear resize to (w, h) -> /255 -> mean/std.

    A picklable wrapper around :func:`preprocess` (the one implementation of it). Call with a PIL image; returns float32 ``(3, height, width)``.
    """

    def __init__(self, height: int, width: int, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.height, self.width = height, width
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return preprocess(img, (self.height, self.width), self.mean, self.std)

    def __repr__(self) -> str:
        return f"TestTransform(height={self.height}, width={self.width})"


def build_test_transform(
    height: int = 256, width: int = 128, *, mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> TestTransform:
    """The test transform (PIL image -> float32 ``(3, height, width)``), identical to torchreid's."""
    return TestTransform(height, width, mean, std)


def standardize_batch(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> standardised (mean/std) float32 ``(B, 3, H, W)``."""
    m = torch.tensor(mean, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32, device=images.device).view(1, 3, 1, 1) * 255.0
    return (images.float() - m) / s
