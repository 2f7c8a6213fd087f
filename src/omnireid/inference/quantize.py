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
so they should look like the crops the model will see.

The ranges are recorded here (:func:`activation_ranges`) rather than by the quantiser's own
calibrator, which inserts its min/max nodes in quadratic time and runs them in an unoptimised
session; the quantiser then reads them from its calibration cache file. The ranges are the same
tensors' minima and maxima (to float rounding), so the written graph is the same. Where the
installed ONNX Runtime has no calibration cache (before 1.32), its calibrator runs as before.

:func:`synthetic_crops` draws labelled crops from the procedural benchmark
(:mod:`omnireid.data.synthetic`) in memory; they are the fallback when the caller has no crops of
their own, and the labelled gate set of :mod:`omnireid.inference.accuracy`.
"""

from __future__ import annotations

import hashlib
import inspect
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
        pools_as_depthwise_convs(pre)
        options = {}
        if _has_calibration_cache():
            options["calibration_cache_path"] = _write_calibration_cache(
                activation_ranges(pre, calibration, batch_size), Path(tmp) / "ranges.json")
        # the quantiser logs one INFO line per copied bias on the root logger; hold those back
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.WARNING))
        try:
            quantize_static(str(pre), str(tmp_out), None if options else Reader(),
                            quant_format=QuantFormat.QDQ, per_channel=per_channel,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                            calibrate_method=CalibrationMethod.MinMax, **options)
        finally:
            root.setLevel(level)
    logger.info("wrote int8 model %s (calibrated on %d crops)", out_path, len(calibration))
    return out_path


def pools_as_depthwise_convs(onnx_path: str | os.PathLike) -> int:
    """Rewrite, in place, every non-overlapping average pooling of the graph (kernel equal to
    stride, no padding, floor mode) as the depthwise convolution it equals: one ``k x k`` filter
    per channel, every weight ``1 / (k * k)``. Returns how many were rewritten.

    In fp32 the two give the same numbers (the weights are powers of two for OSNet's 2x2 pools;
    ONNX Runtime's outputs were identical to the last bit). Quantised, the convolution runs as
    one of ONNX Runtime's int8 convolution kernels instead of its ``QLinearAveragePool``, which
    took 8.4 of 54.6 ms in osnet_x1_0 at batch 16 on two threads for the model's two pools. On a
    2-core AMD EPYC the rewritten graph ran 13-18 % faster in ONNX Runtime and 0.3-1.8 % slower
    in OpenVINO (four interleaved runs; ``benchmarks/bench_int8_pools.py``, docs/deployment.md,
    "int8"). A pool whose channel count the graph's shape information does not give is left as
    it is.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    infos = {vi.name: vi for vi in (*graph.value_info, *graph.input, *graph.output)}
    nodes, rewritten = [], 0
    for node in graph.node:
        shape = _pool_as_conv(node, infos)
        if shape is None:
            nodes.append(node)
            continue
        kernel, channels = shape
        weight = np.full((channels, 1, *kernel), 1.0 / float(np.prod(kernel)), np.float32)
        weight_name = f"{node.output[0]}_omnireid_pool_weight"
        graph.initializer.append(numpy_helper.from_array(weight, weight_name))
        nodes.append(helper.make_node("Conv", [node.input[0], weight_name], list(node.output),
                                      name=f"{node.name}_as_depthwise_conv", group=channels,
                                      kernel_shape=kernel, strides=kernel))
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        onnx.save(model, str(onnx_path))
    return rewritten


def _pool_as_conv(node, infos: dict) -> tuple[list[int], int] | None:
    """``(kernel, channels)`` of an ``AveragePool`` node that equals a depthwise convolution,
    else None."""
    from onnx import helper

    if node.op_type != "AveragePool":
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    if (len(kernel) != 2 or list(attrs.get("strides", [1, 1])) != kernel
            or any(attrs.get("pads", [0, 0, 0, 0])) or attrs.get("ceil_mode", 0)
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID")):
        return None
    info = infos.get(node.input[0])
    if info is None or not info.type.HasField("tensor_type"):
        return None
    dims = info.type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[1].HasField("dim_value"):
        return None
    return kernel, int(dims[1].dim_value)


def _has_calibration_cache() -> bool:
    """Whether the installed quantiser reads ranges from a calibration cache file (ONNX Runtime
    1.32 and later)."""
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def _write_calibration_cache(ranges: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    save_tensors_data(TensorsData(CalibrationMethod.MinMax, dict(ranges)), path)
    return path


def activation_ranges(
    onnx_path: str | os.PathLike,
    calibration: np.ndarray,
    batch_size: int = 16,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Minimum and maximum of every float tensor that enters or leaves a node of the graph, over
    the calibration crops: the ranges that ONNX Runtime's MinMax calibrator records, for the same
    tensors.

    The graph gets a ReduceMin and a ReduceMax node per tensor, appended after the original nodes
    (linear time), and runs in one session with ONNX Runtime's graph optimisations on. The ranges
    are therefore those of the optimised kernels, which round differently from the reference
    kernels in the last bits (osnet's ranges moved by at most 3e-5 relative).

    Args:
        onnx_path: a graph with shape information on its tensors (as
            ``onnxruntime.quantization.shape_inference.quant_pre_process`` writes it).
        calibration: ``(N, 3, H, W)`` float32 crops.
        batch_size: crops per run.

    Returns:
        ``{tensor name: (minimum, maximum)}``, each a float32 array of shape ``(1,)``.
    """
    require("onnxruntime", "deploy", "int8 quantisation")
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_path))
    graph = model.graph
    infos = {vi.name: vi for vi in graph.value_info}
    infos.update({vi.name: vi for vi in graph.output})
    infos.update({vi.name: vi for vi in graph.input})
    constants = {init.name for init in graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    names: list[str] = []
    seen: set[str] = set()
    for node in graph.node:
        for name in (*node.input, *node.output):
            if name in seen or name in constants or name not in infos:
                continue
            kind = infos[name].type
            if kind.HasField("tensor_type") and kind.tensor_type.elem_type in floats:
                seen.add(name)
                names.append(name)
    for i, name in enumerate(names):
        elem = infos[name].type.tensor_type.elem_type
        for op in ("ReduceMin", "ReduceMax"):
            out = f"omnireid_range_{i}_{op}"
            graph.node.append(onnx.helper.make_node(op, [name], [out], keepdims=0,
                                                    name=f"omnireid_range_{i}_{op}_node"))
            graph.output.append(onnx.helper.make_tensor_value_info(out, elem, []))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    fetch = [f"omnireid_range_{i}_{op}" for i in range(len(names)) for op in ("ReduceMin", "ReduceMax")]
    low = np.full(len(names), np.inf, np.float32)
    high = np.full(len(names), -np.inf, np.float32)
    for start in range(0, len(calibration), batch_size):
        values = session.run(fetch, {input_name: calibration[start:start + batch_size]})
        low = np.fmin(low, np.asarray(values[0::2], np.float32).reshape(-1))
        high = np.fmax(high, np.asarray(values[1::2], np.float32).reshape(-1))
    return {name: (low[i:i + 1].copy(), high[i:i + 1].copy()) for i, name in enumerate(names)}


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
