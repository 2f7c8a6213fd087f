"""Post-training static int8 quantisation of an exported model, and the crops it is calibrated on.

The quantiser is ONNX Runtime's (``onnxruntime.quantization``, part of the ``deploy`` extra, no
further dependency): the exported fp32 graph is shape-inferred, run on calibration crops to record
every activation's range (min/max), and rewritten in QDQ form: int8 per-output-channel weights,
uint8 per-tensor activations, a QuantizeLinear/DequantizeLinear pair around every quantised
operator. ONNX Runtime runs that graph with its int8 kernels; OpenVINO reads the same file,
turns the pairs into FakeQuantize operations and runs int8 kernels too (on this project's CPUs it
is the faster of the two; see docs/deployment.md for the measurements and for the comparison with
OpenVINO's own quantiser, NNCF).

Calibration crops matter more than any setting of the quantiser: the ranges are taken from them,
so they should look like the crops the model will see. :func:`synthetic_crops` draws labelled
crops from the procedural benchmark (:mod:`omnireid.data.synthetic`) in memory; they are the
fallback when the caller has no crops of their own, and the labelled gate set of
:mod:`omnireid.inference.accuracy`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from omnireid.data.synthetic import DOMAIN_STYLES
from omnireid.data.synthetic_render import (
    apply_camera,
    make_camera,
    make_identity,
    render_person,
)
from omnireid.errors import DataError, UsageError
from omnireid.extras import require
from omnireid.files import atomic_path
from omnireid.inference.inputs import describe, to_model_input

logger = logging.getLogger(__name__)

CALIBRATION_SEED = 1
"""Seed of the default synthetic calibration crops (the accuracy gate uses another seed, so a
quantised model is never checked on the crops it was calibrated on)."""


@dataclass
class LabelledCrops:
    """Person crops with identities and cameras.

    Attributes:
        images: ``N`` uint8 RGB arrays ``(H, W, 3)``.
        pids: ``(N,)`` int64 identity labels.
        camids: ``(N,)`` int64 camera labels.
    """

    images: list[np.ndarray]
    pids: np.ndarray
    camids: np.ndarray


def synthetic_crops(num_ids: int = 32, num_cameras: int = 2, seed: int = CALIBRATION_SEED,
                    domain: str = "a", size: tuple[int, int] = (128, 64)) -> LabelledCrops:
    """``num_ids * num_cameras`` crops of ``size`` (H, W), every identity once in every camera,
    drawn deterministically from ``seed`` by the synthetic benchmark's renderer (no files)."""
    if num_ids < 1 or num_cameras < 1:
        raise ValueError(f"need at least one identity and one camera, got {num_ids}, {num_cameras}")
    style = DOMAIN_STYLES[domain]
    cams = [make_camera(c, style, np.random.default_rng([seed, 0, c])) for c in range(num_cameras)]
    images, pids, camids = [], [], []
    for pid in range(num_ids):
        person = make_identity(pid + 1, style.population, np.random.default_rng([seed, 1, pid]))
        for c, camera in enumerate(cams):
            rng = np.random.default_rng([seed, 2, pid, c])
            images.append(apply_camera(render_person(person, camera, style.colour_jitter, rng, size), camera, rng))
            pids.append(pid)
            camids.append(c)
    return LabelledCrops(images, np.asarray(pids, np.int64), np.asarray(camids, np.int64))


def array_digest(x: np.ndarray) -> str:
    """Short sha256 of an array's shape, dtype and bytes (a cache key for calibration data)."""
    h = hashlib.sha256(f"{x.shape}{x.dtype}".encode())
    h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:16]


def quantize_onnx_int8(
    onnx_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration: np.ndarray,
    batch_size: int = 16,
    per_channel: bool = True,
) -> Path:
    """Write a QDQ int8 copy of an fp32 ONNX graph, calibrated on ``calibration``.

    Args:
        onnx_path: fp32 graph with one input (as :func:`omnireid.inference.export.export_onnx`
            writes it).
        out_path: the quantised ``.onnx`` (written atomically).
        calibration: ``(N, 3, H, W)`` float32 preprocessed crops; activation ranges are their
            min/max.
        batch_size: crops per calibration run.
        per_channel: one weight scale per output channel (per tensor otherwise).
    """
    require("onnxruntime", "deploy", "int8 quantisation")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    calibration = np.ascontiguousarray(calibration, dtype=np.float32)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise UsageError(f"calibration must be a non-empty (N, 3, H, W) batch, got shape "
                         f"{calibration.shape}")
    import onnx

    input_name = onnx.load(str(onnx_path), load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.chunks = iter([calibration[i:i + batch_size]
                                for i in range(0, len(calibration), batch_size)])

        def get_next(self) -> dict | None:
            chunk = next(self.chunks, None)
            return None if chunk is None else {input_name: chunk}

    out_path = Path(out_path)
    with tempfile.TemporaryDirectory() as tmp, atomic_path(out_path) as tmp_out:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(onnx_path), str(pre))
        # the quantiser logs one INFO line per copied bias on the root logger; hold those back
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))
        try:
            quantize_static(str(pre), str(tmp_out), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=per_channel, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax)
        finally:
            root.setLevel(level)
    logger.info("wrote int8 model %s (calibrated on %d crops)", out_path, len(calibration))
    return out_path


def calibration_batch(
    images: Sequence | np.ndarray | None,
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    limit: int = 128,
) -> np.ndarray:
    """Preprocessed ``(N, 3, H, W)`` calibration crops: ``images`` (anything the extractor
    accepts; at most ``limit``, evenly spaced) or, for ``None``, the synthetic crops."""
    if images is None:
        images = synthetic_crops().images
        logger.info("calibrating on %d synthetic crops; crops like the ones the model will see "
                    "calibrate better", len(images))
    if len(images) == 0:
        raise DataError("no calibration images given")
    pick = np.unique(np.linspace(0, len(images) - 1, min(limit, len(images))).round().astype(int))
    if isinstance(images, np.ndarray) and images.dtype == np.float32 and images.ndim == 4:
        return np.ascontiguousarray(images[pick])
    tensors = []
    for i in pick:
        try:
            tensors.append(to_model_input(images[i], size, mean, std, name=describe(images[i], i)))
        except (OSError, ValueError) as exc:  # one bad crop does not stop a calibration
            logger.warning("calibration: skipping %s", exc)
    if not tensors:
        raise DataError("none of the calibration images could be read")
    return torch.stack(tensors).numpy()
