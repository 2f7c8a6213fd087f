"""Execution backends: one callable per way of running a model on a preprocessed batch.

Every runner maps ``(N, 3, H, W)`` float32 NumPy input to ``(N, D)`` float32 raw embeddings.

========================  =====================================================================
``eager``                 the model as built (plain PyTorch)
``fused``                 :func:`~omnireid.inference.fuse.optimize_for_inference`: BN folded,
                          channels-last; on the CPU also TorchScript-frozen (plain PyTorch, the
                          default)
``bf16``                  ``fused`` with bfloat16 weights and activations (CPUs with native
                          bf16, e.g. AVX512-BF16/AMX; slower elsewhere)
``onnxruntime``           ONNX Runtime, fp32 (``omnireid[deploy]``)
``openvino``              OpenVINO, fp32 (``omnireid[openvino]``)
``openvino-bf16``         OpenVINO with bf16 inference precision
========================  =====================================================================
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.inference.preprocess import DEFAULT_SIZE

logger = logging.getLogger(__name__)

BACKENDS = ("eager", "fused", "bf16", "onnxruntime", "openvino", "openvino-bf16")

Runner = Callable[[np.ndarray], np.ndarray]


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN's AVX512-BF16 / AMX kernels)."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def available_backends() -> list[str]:
    """Backends usable in this environment (optional packages installed, CPU support)."""
    import importlib.util

    out = ["eager", "fused"]
    if cpu_has_bf16():
        out.append("bf16")
    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"):
        out.append("onnxruntime")
    if importlib.util.find_spec("openvino"):
        out += ["openvino", "openvino-bf16"]
    return out


class TorchRunner:
    """Runs a PyTorch module. ``dtype`` bfloat16 casts weights and input; ``channels_last``
    feeds NHWC-strided input."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        if dtype != torch.float32:  # casting is in place: keep the caller's model as it is
            import copy

            model = copy.deepcopy(model)
        self.model = model.to(self.device, dtype).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` tensor -> ``(N, D)`` float32 tensor on the CPU."""
        x = x.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        emb = out.embedding if hasattr(out, "embedding") else out
        return emb.float().cpu()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run_tensor(torch.from_numpy(np.ascontiguousarray(x))).numpy()


class OrtRunner:
    """ONNX Runtime session on an exported ``.onnx`` file."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None) -> None:
        from omnireid.inference.export import _require

        ort = _require("onnxruntime", "deploy")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = num_threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]


class OpenVINORunner:
    """OpenVINO compiled model (from ``.xml`` IR or ``.onnx``) on the CPU plugin."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 bf16: bool = False) -> None:
        from omnireid.inference.export import _require

        ov = _require("openvino", "openvino")
        core = ov.Core()
        config = {
            "INFERENCE_NUM_THREADS": int(num_threads or torch.get_num_threads()),
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        }
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        result = self.request.infer({0: x})
        return np.asarray(next(iter(result.values())), dtype=np.float32).copy()


def freeze_for_cpu(model: nn.Module, size: tuple[int, int] = DEFAULT_SIZE) -> nn.Module:
    """TorchScript trace + ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference`` of a
    channels-last fp32 model (oneDNN weight prepacking, conv+ReLU fusion). Works for any batch
    size. Returns ``model`` unchanged, with a log message, where TorchScript is unavailable."""
    import warnings

    from omnireid.inference.fuse import EmbeddingModel

    x = torch.randn(2, 3, *size).contiguous(memory_format=torch.channels_last)
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(EmbeddingModel(model).eval(), x, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            frozen(x)
            frozen(x)
        return frozen
    except Exception as exc:  # noqa: BLE001 - any TorchScript failure falls back to eager
        logger.info("TorchScript freezing unavailable (%s); using the eager fused model", exc)
        return model


def make_runner(
    backend: str,
    model: nn.Module | str | os.PathLike,
    size: tuple[int, int] = DEFAULT_SIZE,
    device: str | torch.device | None = None,
    num_threads: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Runner:
    """Build a runner for ``backend`` (one of :data:`BACKENDS`).

    ``model`` is an ``nn.Module`` or, for ``onnxruntime``/``openvino*``, also a path to an
    exported file. PyTorch modules given to those backends are exported first (to ``cache_dir``,
    or a temporary folder).
    """
    from omnireid.inference.fuse import optimize_for_inference

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    device = torch.device(device or "cpu")
    if backend in ("eager", "fused", "bf16"):
        if not isinstance(model, nn.Module):
            raise ValueError(f"backend {backend!r} needs a PyTorch model, got {model!r}")
        if backend == "eager":
            return TorchRunner(model, device)
        fast = optimize_for_inference(model, channels_last=device.type == "cpu")
        if backend == "fused":
            runner = TorchRunner(fast, device, channels_last=device.type == "cpu")
            if device.type == "cpu":
                runner.model = freeze_for_cpu(runner.model, size)
            return runner
        if device.type == "cpu" and not cpu_has_bf16():
            logger.warning("this CPU has no native bf16 support; bf16 will be slow")
        return TorchRunner(fast, device, dtype=torch.bfloat16, channels_last=device.type == "cpu")

    path: Path
    if isinstance(model, nn.Module):
        from omnireid.inference.export import export_onnx

        folder = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="omnireid-"))
        path = export_onnx(model, folder / "model.onnx", size)
    else:
        path = Path(model)
    if backend == "onnxruntime":
        return OrtRunner(path, num_threads)
    return OpenVINORunner(path, num_threads, bf16=backend == "openvino-bf16")
