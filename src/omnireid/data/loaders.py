"""From samples to batches: the map-style dataset, the batch record and the loader builders."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from omnireid.data.decode import ImageDecodeError, check_pixel_count, read_image
from omnireid.data.records import Sample
from omnireid.data.samplers import (
    CameraBalancedSampler,
    DatasetBalancedSampler,
    RandomIdentitySampler,
    ShuffleSampler,
)
from omnireid.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    build_test_transform,
    build_train_transform,
)
from omnireid.errors import UsageError
from omnireid.registry import lookup

logger = logging.getLogger(__name__)

class LoadedImage(NamedTuple):
    """One dataset item: the transformed image and its sample's labels (what :func:`collate`
    stacks)."""

    image: torch.Tensor
    pid: int
    camid: int
    dsetid: int
    path: str


class BadImage(NamedTuple):
    """An image a loader could not read: its path and the reason."""

    path: str
    reason: str


@dataclass
class Batch:
    """A collated batch.

    Attributes:
        images: (B, 3, H, W) float32 (uint8 when the loader was built with ``standardize=False``).
        pids, camids, dsetids: (B,) int64.
        paths: B file paths.
        skipped: the unreadable images left out of this batch (only with ``on_error="skip"``).
    """

    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    dsetids: torch.Tensor
    paths: list[str] = field(default_factory=list)
    skipped: list[BadImage] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_skipped(self) -> int:
        """How many unreadable images were left out of this batch."""
        return len(self.skipped)

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.pids.pin_memory(), self.camids.pin_memory(),
                     self.dsetids.pin_memory(), self.paths, self.skipped)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(self.images.to(device, non_blocking=non_blocking), self.pids.to(device),
                     self.camids.to(device), self.dsetids.to(device), self.paths, self.skipped)


@functools.cache
def _jpeg_decoder():
    """torchvision's libjpeg-turbo decoder, or None where this torchvision has none."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # deferred import: whether this torchvision has the decoder is known only by trying
            from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:  # pragma: no cover - depends on the torchvision version
        return None
    return decode_jpeg, ImageReadMode.RGB


def _read_uint8_tensor(path: str) -> torch.Tensor:
    """Decode to a uint8 ``(3, H, W)`` tensor; whole JPEGs go through torchvision, the rest PIL."""
    if path.lower().endswith((".jpg", ".jpeg")):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ImageDecodeError(path, str(exc)) from None
        # A JPEG without its end marker is truncated: let PIL report it properly. The header is
        # checked against PIL's decompression-bomb limit first (torchvision has none).
        if data[-2:] == b"\xff\xd9" and _jpeg_decoder() is not None:
            check_pixel_count(path, data)
            decode_jpeg, rgb = _jpeg_decoder()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=rgb)
            except RuntimeError:
                pass
    img = read_image(path)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


ON_ERROR = ("raise", "skip")


class ImageDataset(Dataset):
    """Images of a list of samples, decoded and transformed.

    Args:
        samples: what to read.
        transform: applied to the decoded image; it receives a uint8 tensor ``(3, H, W)`` when
            ``tensor_input`` is true (training transforms), else a PIL RGB image (test transform).
        on_error: ``"raise"`` (default): an unreadable file raises :class:`ImageDecodeError`
            naming it; ``"skip"``: it is logged, left out of its batch and listed in
            ``Batch.skipped``. Inside a loader worker the failure is handed back as a
            :class:`BadImage` either way, and :class:`ReIDLoader` raises it in the calling
            process (so the error keeps its type and message).
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable | None = None, *,
                 tensor_input: bool = True, on_error: str = "raise") -> None:
        if on_error not in ON_ERROR:
            raise UsageError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.samples = list(samples)
        self.transform = transform
        self.tensor_input = tensor_input
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        s = self.samples[index]
        try:
            img = _read_uint8_tensor(s.path) if self.tensor_input else read_image(s.path)
        except ImageDecodeError as exc:
            if self.on_error == "raise" and get_worker_info() is None:
                raise
            if self.on_error == "skip":
                logger.warning("skipping %s", exc)
            return BadImage(exc.path, exc.reason)
        if self.transform is not None:
            img = self.transform(img)
        return LoadedImage(img, s.pid, s.camid, s.dsetid, s.path)


def collate(items: list[LoadedImage | BadImage]) -> Batch:
    """Stack dataset items into a :class:`Batch`; unreadable ones go to ``Batch.skipped``."""
    good = [it for it in items if isinstance(it, LoadedImage)]
    skipped = [it for it in items if isinstance(it, BadImage)]
    if not good:
        empty = torch.zeros(0, dtype=torch.int64)
        return Batch(torch.zeros(0, 3, 1, 1), empty, empty.clone(), empty.clone(), [], skipped)
    images = torch.stack([it.image for it in good])
    pids = torch.tensor([it.pid for it in good], dtype=torch.int64)
    camids = torch.tensor([it.camid for it in good], dtype=torch.int64)
    dsetids = torch.tensor([it.dsetid for it in good], dtype=torch.int64)
    return Batch(images, pids, camids, dsetids, [it.path for it in good], skipped)


class ReIDLoader(DataLoader):
    """A ``DataLoader`` of :class:`Batch` es that applies the unreadable-image policy in the
    calling process: with ``on_error="raise"`` the first unreadable image of a batch raises
    :class:`ImageDecodeError` naming it, even when a worker process read it."""

    def __init__(self, *args, on_error: str = "raise", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_error = on_error

    def __iter__(self):
        for batch in super().__iter__():
            if batch.skipped and self.on_error == "raise":
                raise ImageDecodeError(*batch.skipped[0])
            yield batch


def _identity_sampler(samples: Sequence[Sample], batch_size: int, *, num_instances: int,
                      cameras_per_batch: int | None, **place: int) -> Sampler:
    return RandomIdentitySampler([s.pid for s in samples], batch_size, num_instances, **place)


def _random_sampler(samples: Sequence[Sample], batch_size: int, *, num_instances: int,
                    cameras_per_batch: int | None, **place: int) -> Sampler:
    return ShuffleSampler(len(samples), batch_size, **place)


def _camera_sampler(samples: Sequence[Sample], batch_size: int, *, num_instances: int,
                    cameras_per_batch: int | None, **place: int) -> Sampler:
    return CameraBalancedSampler([s.camid for s in samples], batch_size, cameras_per_batch, **place)


def _dataset_sampler(samples: Sequence[Sample], batch_size: int, *, num_instances: int,
                     cameras_per_batch: int | None, **place: int) -> Sampler:
    return DatasetBalancedSampler([s.dsetid for s in samples], batch_size, **place)


#: The training samplers by name (``data.sampler`` in a recipe): each builder takes the samples,
#: the batch size, the sampler options and ``seed``/``rank``/``world_size``.
SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "identity": _identity_sampler,  # P identities x K images (torchreid's RandomIdentitySampler)
    "random": _random_sampler,
    "camera": _camera_sampler,
    "dataset": _dataset_sampler,
}


def build_train_sampler(
    samples: Sequence[Sample], sampler: str, batch_size: int, *, num_instances: int = 4,
    cameras_per_batch: int | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
) -> Sampler:
    """One of :data:`SAMPLERS`: ``identity`` (P x K), ``random``, ``camera``, ``dataset``."""
    build = lookup("sampler", sampler, SAMPLERS)
    return build(samples, batch_size, num_instances=num_instances,
                 cameras_per_batch=cameras_per_batch, seed=seed, rank=rank, world_size=world_size)


def build_train_loader(
    samples: Sequence[Sample],
    *,
    height: int = 256,
    width: int = 128,
    batch_size: int = 64,
    sampler: str = "identity",
    num_instances: int = 4,
    cameras_per_batch: int | None = None,
    num_workers: int = 2,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    random_flip: bool = True,
    random_crop: bool = False,
    random_erase: bool = False,
    color_jitter: bool = False,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    standardize: bool = True,
    on_error: str = "raise",
    pin_memory: bool = False,
    persistent_workers: bool | None = None,
) -> DataLoader:
    """A training loader yielding :class:`Batch` es of ``batch_size`` (last partial batch dropped).

    The sampler (``loader.sampler``) has ``set_epoch(epoch)``; call it each epoch. Under DDP pass
    ``rank`` and ``world_size``: each rank then gets its own whole batches. Augmentation
    randomness in the workers is seeded from ``seed`` too.
    """
    transform = build_train_transform(
        height, width, random_flip=random_flip, random_crop=random_crop, random_erase=random_erase,
        color_jitter=color_jitter, mean=mean, std=std, standardize=standardize)
    dataset = ImageDataset(samples, transform, tensor_input=True, on_error=on_error)
    train_sampler = build_train_sampler(samples, sampler, batch_size, num_instances=num_instances,
                                        cameras_per_batch=cameras_per_batch, seed=seed, rank=rank,
                                        world_size=world_size)
    generator = torch.Generator().manual_seed(seed + 7919 * rank)
    return ReIDLoader(
        dataset, batch_size=batch_size, sampler=train_sampler, num_workers=num_workers,
        collate_fn=collate, drop_last=True, pin_memory=pin_memory, generator=generator, on_error=on_error,
        persistent_workers=bool(num_workers > 0 if persistent_workers is None else persistent_workers and num_workers > 0),
    )


def build_test_loader(
    samples: Sequence[Sample],
    *,
    height: int = 256,
    width: int = 128,
    batch_size: int = 128,
    num_workers: int = 2,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    on_error: str = "raise",
    pin_memory: bool = False,
) -> DataLoader:
    """A loader over ``samples`` in order, with torchreid's exact test preprocessing."""
    dataset = ImageDataset(samples, build_test_transform(height, width, mean=mean, std=std),
                           tensor_input=False, on_error=on_error)
    return ReIDLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=collate, drop_last=False, pin_memory=pin_memory, on_error=on_error)
