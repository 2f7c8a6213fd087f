"""`FeatureExtractor`: embeddings from person crops in whatever form the caller holds them."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from omnireid.errors import UsageError
from omnireid.evaluation.distances import flip_average, l2_normalize
from omnireid.inference.accuracy import AccuracyGateError
from omnireid.inference.autoselect import gate_runner, select_backend
from omnireid.inference.inputs import ImageInput, describe, to_model_input
from omnireid.inference.quantize import calibration_batch
from omnireid.inference.runtime import (
    BACKEND_PRECISION,
    BACKENDS,
    PRECISIONS,
    TorchRunner,
    make_runner,
    stream_count,
)
from omnireid.models import create_model
from omnireid.models.weights import load_weights, preprocessing_of
from omnireid.progress import progress_bar

if TYPE_CHECKING:
    from omnireid.inference.quantize import LabelledCrops

logger = logging.getLogger(__name__)


@dataclass
class ExtractResult:
    """Embeddings of the images that could be read, and the ones that could not.

    Attributes:
        embeddings: ``(M, D)`` float32, one row per readable image, in input order.
        indices: ``(M,)`` int64 positions of those images in the input list.
        failed: ``(position, message)`` for every image that could not be read.
    """

    embeddings: np.ndarray
    indices: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)
    #: the exception behind each entry of ``failed`` (an :class:`~omnireid.errors.ImageError`
    #: carries ``path`` and ``reason``)
    errors: list[Exception] = field(default_factory=list, repr=False)


class FeatureExtractor:
    """Embeds person crops with an omnireid model.

    Args:
        model: a model name (see :func:`omnireid.list_models`) or an ``nn.Module`` whose forward
            returns a record with ``.embedding``.
        weights: checkpoint path (or a known checkpoint name) to load when ``model`` is a name.
        device: ``"cpu"``, ``"cuda"``, ...; defaults to CUDA when available, else CPU.
        batch_size: images per forward pass.
        size: (height, width) crops are resized to; defaults to the input size the model's
            weights were trained at (:func:`omnireid.models.weights.preprocessing_of`: recorded
            when a known checkpoint is loaded), else 256x128.
        mean, std: normalisation; default: the model's recorded mean/std, else ImageNet's (as
            torchreid).
        normalize: L2-normalise the returned embeddings.
        backend: how to run the model: ``"auto"`` (default: the fastest installed backend that
            meets ``precision``, measured once on this machine and cached; see
            :mod:`omnireid.inference.autoselect`; the choice is in :attr:`selection`) or one of
            :data:`omnireid.inference.runtime.BACKENDS`: ``"fused"`` (plain PyTorch with
            BatchNorm folded, channels-last), ``"eager"``, ``"bf16"``, ``"onnxruntime"``,
            ``"openvino"``, ``"openvino-bf16"``, ``"onnxruntime-int8"``, ``"openvino-int8"``.
        precision: for ``backend="auto"``: ``"fp32"`` (default: only paths whose embeddings
            equal the eager model's to 1e-4), ``"bf16"`` or ``"int8"`` (also paths of that
            precision that pass an accuracy gate against fp32).
        calibration: crops (anything the extractor accepts) that int8 paths are calibrated on;
            default: synthetic crops. Crops like the ones to be embedded calibrate better.
        check_accuracy: run the accuracy gate when an int8 backend is named explicitly, and
            refuse it (:class:`~omnireid.inference.accuracy.AccuracyGateError`) if it fails.
        gate_crops: :class:`~omnireid.inference.quantize.LabelledCrops` (uint8 crops with
            identities and at least two cameras) that the bf16/int8 accuracy gates use instead
            of the built-in synthetic ones: crops of the caller's own domain judge a model
            trained on real images better.
        num_threads: threads for ONNX Runtime / OpenVINO (default: torch's thread count).
            With two or more threads and at least 4 images per thread in a batch, OpenVINO
            runs the batch as one stream per thread
            (:func:`~omnireid.inference.runtime.stream_count`).
        num_workers: threads that decode and resize the next batch while the model runs on the
            current one; 0 does everything on the calling thread. The default depends on where
            the model runs: 0 for the PyTorch backends on the CPU (their intra-op threads
            already use every core, and decoding beside them slowed osnet_x1_0 from 62 to 47
            img/s on two cores), 2 for ONNX Runtime and OpenVINO (osnet_x0_25: 321 -> 417 and
            378 -> 433 img/s), 4 for a GPU, which would otherwise wait for the CPU. The
            embeddings do not depend on it.
        micro_batch: for the PyTorch backends, images per forward pass inside a batch:
            ``"auto"`` (default) sizes them from the model's widest activation and the thread
            count (see :func:`omnireid.inference.runtime.auto_micro_batch`), an int forces a
            size, ``None`` runs whole batches. The embeddings do not depend on it.
        channels_last: for the ``eager`` backend, feed NHWC-strided input (as a model trained
            with channels-last memory expects; the fused backends always do on the CPU).

    Calling it returns ``(N, D)`` float32 embeddings (D = 512 for OSNet).
    """

    def __init__(
        self,
        model: str | nn.Module,
        weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 64,
        size: tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        normalize: bool = True,
        backend: str = "auto",
        num_threads: int | None = None,
        micro_batch: int | str | None = "auto",
        num_workers: int | None = None,
        precision: str = "fp32",
        calibration: Sequence[ImageInput] | np.ndarray | None = None,
        check_accuracy: bool = True,
        gate_crops: LabelledCrops | None = None,
        channels_last: bool = False,
    ) -> None:
        if backend != "auto" and backend not in BACKENDS:
            raise UsageError(f"unknown backend {backend!r}; choose from auto, "
                             f"{', '.join(BACKENDS)}")
        if precision not in PRECISIONS:
            raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise UsageError(f"num_workers must be >= 0, got {num_workers}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if isinstance(model, str):
            self.model_name = model
            module = create_model(model)
        elif isinstance(model, nn.Module):
            self.model_name = type(model).__name__
            module = model
        else:
            raise TypeError(f"model must be a name or an nn.Module, got {type(model).__name__}")
        self.weights = None
        if weights is not None:
            load_weights(module, weights)
            self.weights = str(weights)
        self.model = module.eval()
        own = preprocessing_of(module)  # what the loaded weights were trained with
        self.size = tuple(size) if size is not None else own.input_size
        self.mean = tuple(mean) if mean is not None else own.mean
        self.std = tuple(std) if std is not None else own.std
        self.batch_size = batch_size
        self.normalize = normalize
        self.feature_dim = int(getattr(module, "feature_dim", 0))
        self.selection = None
        if backend not in ("auto", "eager", "fused") and self.device.type != "cpu":
            raise UsageError(f"backend {backend!r} runs on the CPU only")
        calib = None
        if (precision == "int8" and backend == "auto") or backend.endswith("-int8"):
            calib = calibration_batch(calibration, self.size, self.mean, self.std)
        if backend == "auto":
            self.selection = select_backend(
                self.model, self.size, batch_size, precision, device=self.device,
                num_threads=num_threads, micro_batch=micro_batch, calibration=calib,
                mean=self.mean, std=self.std, gate_crops=gate_crops)
            backend, self._runner = self.selection.backend, self.selection.runner
        elif backend == "eager" and channels_last:
            self._runner = TorchRunner(self.model, self.device, channels_last=True,
                                       micro_batch=None if micro_batch == "auto" else micro_batch)
        else:
            threads = int(num_threads or torch.get_num_threads())
            self._runner = make_runner(backend, self.model, self.size, self.device, num_threads,
                                       micro_batch=micro_batch, calibration=calib,
                                       streams=stream_count(threads, batch_size, backend))
            if BACKEND_PRECISION[backend] == "int8" and check_accuracy:
                self._gate(backend, gate_crops)
        self.backend = backend
        if num_workers is None:
            cpus = os.cpu_count() or 1
            if self.device.type != "cpu":
                num_workers = min(4, cpus)
            elif backend in ("eager", "fused", "bf16"):
                num_workers = 0
            else:
                num_workers = min(2, cpus)
        self.num_workers = num_workers
        logger.info("feature extractor: %s, backend %s, device %s", self.model_name, backend,
                    self.device)

    def _gate(self, backend: str, gate_crops: LabelledCrops | None = None) -> None:
        result = gate_runner(self.model, self._runner, BACKEND_PRECISION[backend], self.size,
                             self.mean, self.std, gate_crops)
        if not result.passed:
            raise AccuracyGateError(f"backend {backend!r} refused for {self.model_name}: "
                                    f"{result.reason} (check_accuracy=False to use it anyway)")
        logger.info("backend %s passed its accuracy gate: %s", backend, result.reason)

    def preprocess(self, images: Sequence[ImageInput], bgr: bool = False,
                   offset: int = 0) -> torch.Tensor:
        """Images -> ``(N, 3, H, W)`` float32 batch (the evaluation preprocessing)."""
        return torch.stack([
            to_model_input(x, self.size, self.mean, self.std, bgr=bgr, name=describe(x, offset + i))
            for i, x in enumerate(images)
        ])

    def embed_batch(self, batch: torch.Tensor | np.ndarray, flip: bool = False) -> np.ndarray:
        """``(N, 3, H, W)`` preprocessed batch -> ``(N, D)`` float32 embeddings (normalised if
        the extractor normalises). ``flip``: the mean of each image's embedding and its
        horizontal mirror's, taken before normalising."""
        x = batch.numpy() if isinstance(batch, torch.Tensor) else batch
        out = np.asarray(self._runner(x), dtype=np.float32)
        if flip:
            out = flip_average(out, self._runner(np.ascontiguousarray(x[..., ::-1])))
        return l2_normalize(out) if self.normalize else out

    def __call__(
        self,
        images: ImageInput | Sequence[ImageInput],
        bgr: bool = False,
        progress: bool = False,
    ) -> np.ndarray:
        """Embed one image or a list of images.

        Args:
            images: a path, PIL image, uint8 array ``(H, W)`` / ``(H, W, 3)``, uint8 tensor
                ``(3, H, W)``, preprocessed float tensor ``(3, H, W)``, a float batch tensor
                ``(N, 3, H, W)``, or a list of any of these.
            bgr: arrays/uint8 tensors are in BGR order (OpenCV).
            progress: show a progress bar.

        Returns:
            ``(N, D)`` float32 embeddings in input order. Any unreadable image raises an error
            naming it (see :meth:`extract` to collect failures instead).
        """
        result = self.extract(images, bgr=bgr, progress=progress, strict=True)
        return result.embeddings

    def embed_boxes(
        self,
        frame: np.ndarray | Image.Image,
        boxes: np.ndarray | Sequence[Sequence[float]],
        bgr: bool = False,
    ) -> np.ndarray:
        """Embed the people in ``boxes`` of one video frame, as a tracker does every frame.

        Args:
            frame: ``(H, W, 3)`` uint8 array (RGB, or BGR with ``bgr=True`` as OpenCV gives it)
                or a PIL image.
            boxes: ``(N, 4)`` pixel boxes ``x1, y1, x2, y2`` (floats are rounded outwards to
                whole pixels); parts outside the frame are clipped.

        Returns:
            ``(N, D)`` float32 embeddings in box order (``(0, D)`` for no boxes).

        Raises:
            ValueError: a box is malformed or has no area inside the frame (the message gives
                its index and coordinates).
        """
        if isinstance(frame, Image.Image):
            frame = np.asarray(frame.convert("RGB"))
            bgr = False
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
            raise UsageError(f"frame must be an (H, W, 3) array or a PIL image, got "
                             f"{getattr(frame, 'shape', type(frame).__name__)}")
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(boxes) else np.zeros((0, 4))
        if not np.isfinite(b).all():
            raise UsageError("boxes contain NaN or infinite coordinates")
        height, width = frame.shape[:2]
        crops = []
        for i, (x1, y1, x2, y2) in enumerate(b):
            left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
            right, bottom = min(width, int(np.ceil(x2))), min(height, int(np.ceil(y2)))
            if right <= left or bottom <= top:
                raise UsageError(f"box #{i} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) has no area inside "
                                 f"the {width}x{height} frame")
            crops.append(frame[top:bottom, left:right])
        if not crops:
            return np.zeros((0, self.feature_dim), np.float32)
        return self(crops, bgr=bgr)

    def extract(
        self,
        images: ImageInput | Sequence[ImageInput],
        bgr: bool = False,
        progress: bool = False,
        strict: bool = False,
        flip: bool = False,
        desc: str = "extract",
    ) -> ExtractResult:
        """Like :meth:`__call__`, but with ``strict=False`` unreadable images are collected in
        :attr:`ExtractResult.failed` instead of raising.

        This is the one extraction loop: evaluation (:func:`omnireid.engine.evaluate.evaluate`),
        ``omnireid extract`` and calling the extractor all run through it. ``flip`` averages
        each embedding with its mirror image's (see :meth:`embed_batch`); ``desc`` labels the
        progress bar.
        """
        items = self._as_list(images)
        if isinstance(items, torch.Tensor):  # preprocessed batch
            chunks = [self.embed_batch(items[i:i + self.batch_size].float(), flip)
                      for i in range(0, len(items), self.batch_size)]
            emb = np.concatenate(chunks) if chunks else np.zeros((0, self.feature_dim), np.float32)
            return ExtractResult(emb, np.arange(len(items)), [])
        chunks: list[np.ndarray] = []
        kept: list[int] = []
        failed: list[tuple[int, str]] = []
        errors: list[Exception] = []
        bar = progress_bar(total=len(items), unit="img", enabled=progress, desc=desc)
        pool = ThreadPoolExecutor(self.num_workers) if self.num_workers else None
        starts = range(0, len(items), self.batch_size)
        try:
            # one batch of lookahead: the workers decode batch k+1 while the model runs batch k
            pending = self._submit(pool, items, 0, bgr) if items else []
            for start in starts:
                current = pending
                nxt = start + self.batch_size
                pending = self._submit(pool, items, nxt, bgr) if nxt < len(items) else []
                tensors, idx = [], []
                for i, job in enumerate(current, start):
                    try:
                        tensors.append(job.result() if isinstance(job, Future) else job())
                        idx.append(i)
                    except (OSError, ValueError) as exc:
                        if strict:
                            raise
                        logger.warning("skipping %s", exc)
                        failed.append((i, str(exc)))
                        errors.append(exc)
                if tensors:
                    chunks.append(self.embed_batch(torch.stack(tensors), flip))
                    kept.extend(idx)
                bar.update(len(current))
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        emb = np.concatenate(chunks) if chunks else np.zeros((0, self.feature_dim), np.float32)
        return ExtractResult(emb, np.asarray(kept, dtype=np.int64), failed, errors)

    def _submit(self, pool: ThreadPoolExecutor | None, items: list, start: int,
                bgr: bool) -> list:
        """Decoding jobs for the batch at ``start``: futures on ``pool``, or plain callables to
        run on this thread when there is no pool."""
        jobs = []
        for i in range(start, min(start + self.batch_size, len(items))):
            def load(x=items[i], i=i) -> torch.Tensor:
                return to_model_input(x, self.size, self.mean, self.std, bgr=bgr,
                                      name=describe(x, i))
            jobs.append(pool.submit(load) if pool is not None else load)
        return jobs

    @staticmethod
    def _as_list(images):
        if isinstance(images, torch.Tensor) and images.is_floating_point() and images.ndim == 4:
            return images
        if isinstance(images, (str, os.PathLike, np.ndarray, torch.Tensor)) or hasattr(
                images, "getpixel"):
            return [images]
        return list(images)

    def __repr__(self) -> str:
        return (f"FeatureExtractor({self.model_name!r}, backend={self.backend!r}, "
                f"device={str(self.device)!r}, size={self.size}, normalize={self.normalize})")
