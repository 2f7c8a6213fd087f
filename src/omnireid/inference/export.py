"""Export to ONNX and OpenVINO IR, with a parity check against PyTorch.

Exported graphs take ``images``: ``(N, 3, H, W)`` float32 normalised crops (dynamic ``N``) and give
``embeddings``: ``(N, D)`` float32, the raw (not L2-normalised) embedding, exactly what
``model(x).embedding`` gives in eval mode.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.extras import require
from omnireid.files import atomic_path
from omnireid.inference.fuse import EmbeddingModel, fold_batchnorm
from omnireid.inference.quantize import quantize_onnx_int8
from omnireid.models.weights import preprocessing_of

logger = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


def _export_ready(model: nn.Module) -> nn.Module:
    """Eval-mode copy on CPU with BatchNorm folded and plain-tensor output."""
    m = copy.deepcopy(model).cpu().float().eval()
    if getattr(m, "classifier", None) is not None:
        m.classifier = None
    fold_batchnorm(m)
    return EmbeddingModel(m).eval()


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    opset: int = 17,
) -> Path:
    """Write ``model`` as an ONNX file with a dynamic batch dimension (atomically).

    Args:
        model: any omnireid model (BatchNorm is folded in the exported copy).
        path: output ``.onnx`` file.
        size: (height, width) of the input; default: the model's recorded input size
            (:func:`omnireid.models.weights.preprocessing_of`).
        opset: ONNX opset.
    """
    require("onnx", "deploy", "exporting to ONNX")
    path = Path(path)
    m = _export_ready(model)
    size = size or preprocessing_of(model).input_size
    x = torch.randn(2, 3, *size)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            m, (x,), str(tmp), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset, dynamo=False,
        )
    logger.info("wrote %s", path)
    return path


def export_openvino(
    model: nn.Module,
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write ``model`` as OpenVINO IR (``path`` = the ``.xml``; a ``.bin`` is written beside it).

    Goes through ONNX; the batch dimension stays dynamic; ``size`` as for :func:`export_onnx`.
    Needs ``omnireid[openvino]``.
    """
    ov = require("openvino", "openvino", "exporting to OpenVINO IR")
    path = Path(path).with_suffix(".xml")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", size)
        _save_ir(ov, ov.convert_model(str(onnx_path)), path)
    logger.info("wrote %s", path)
    return path


def _save_ir(ov, ov_model, path: Path) -> None:
    """Write OpenVINO IR, ``path`` (``.xml``) and its ``.bin``, each atomically."""
    with atomic_path(path) as tmp_xml, atomic_path(path.with_suffix(".bin")) as tmp_bin:
        try:
            ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=False)
            os.replace(tmp_xml.with_suffix(".bin"), tmp_bin)  # OpenVINO names the .bin itself
        finally:
            tmp_xml.with_suffix(".bin").unlink(missing_ok=True)


def export_int8(
    model: nn.Module,
    path: str | os.PathLike,
    calibration: np.ndarray,
    size: tuple[int, int] | None = None,
) -> Path:
    """Write an int8 model calibrated on ``calibration`` (``(N, 3, H, W)`` preprocessed crops;
    see :mod:`omnireid.inference.quantize`): a QDQ ``.onnx``, or OpenVINO IR for a ``.xml``
    path (the same quantised graph converted; OpenVINO keeps it as FakeQuantize operations).
    ``size`` as for :func:`export_onnx`."""
    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "model.onnx", size)
        if path.suffix != ".xml":
            return quantize_onnx_int8(fp32, path, calibration)
        ov = require("openvino", "openvino", "an int8 OpenVINO model")
        qdq = quantize_onnx_int8(fp32, Path(tmp) / "model-int8.onnx", calibration)
        _save_ir(ov, ov.convert_model(str(qdq)), path)
    logger.info("wrote %s", path)
    return path
