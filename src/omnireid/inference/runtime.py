"""Execution backends: one callable per way of running a model on a preprocessed batch.

Every runner maps ``(N, 3, H, W)`` float32 NumPy input to ``(N, D)`` float32 raw embeddings.

Micro-batching. On the CPU a forward pass over a whole batch is memory-bound where OSNet is
widest: at 256x128 every image of osnet_x1_0 has 2 MiB of activations after the stem and in
stage 2, so a batch of 16 moves 32 MiB tensors through every layer there (as large as the
last-level cache, and above glibc's largest mmap threshold, so each such tensor is a fresh mapping
that page-faults). The PyTorch CPU runners therefore split a batch into micro-batches whose widest
activation holds at most :data:`MICRO_BATCH_ELEMENTS_PER_THREAD` values per intra-op thread and
concatenate the results (with more threads the micro-batches grow, so that every thread keeps
work). Every image is computed independently either way; only the kernels' blocking changes
(differences of order 1e-7). docs/deployment.md has the measurements.

========================  =====================================================================
``eager``                 the model as built (plain PyTorch)
``fused``                 :func:`~omnireid.inference.fuse.optimize_for_inference`: BN folded,
                          channels-last; on the CPU also TorchScript-frozen and run in
                          cache-sized micro-batches (plain PyTorch, the default)
``bf16``                  ``fused`` with bfloat16 weights and activations (CPUs with native
                          bf16, e.g. AVX512-BF16/AMX; slower elsewhere)
``onnxruntime``           ONNX Runtime, fp32 (``omnireid[deploy]``)
``openvino``              OpenVINO, fp32 (``omnireid[openvino]``)
``openvino-bf16``         OpenVINO with bf16 inference precision
``onnxruntime-int8``      ONNX Runtime on the int8 (QDQ) graph of
                          :mod:`omnireid.inference.quantize`
``openvino-int8``         OpenVINO on the same int8 graph; the operations it leaves in float
                          (zero-point subtractions among them) run in bf16 where the CPU has
                          native bf16 (:func:`cpu_has_bf16`), else in fp32
========================  =====================================================================

``backend="auto"`` (:mod:`omnireid.inference.autoselect`) chooses among these by measurement.

Streams. With ``streams=S`` (S > 1) the ONNX Runtime and OpenVINO runners split a batch of at
least S images into S parts and run them at the same time, each part on its own thread
(``num_threads // S`` each), instead of running the whole batch with all threads working on
every layer together. Small layers (the narrow widths, stage 4 of every width) leave threads
waiting on each other inside a layer; separate streams never wait, at the price of one part's
latency. Batches smaller than S run whole, on one stream. :func:`stream_count` is the rule
``auto`` applies, to the OpenVINO backends only (:data:`STREAMED_BACKENDS`); docs/deployment.md
has the measurements.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from omnireid.errors import UsageError
from omnireid.extras import require
from omnireid.inference.accuracy import cosine_rows
from omnireid.inference.export import export_onnx
from omnireid.inference.fuse import EmbeddingModel, optimize_for_inference
from omnireid.inference.preprocess import DEFAULT_SIZE, IMAGENET_MEAN, IMAGENET_STD
from omnireid.inference.quantize import calibration_batch, quantize_onnx_int8
from omnireid.models.weights import preprocessing_of
from omnireid.registry import lookup

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")

Runner = Callable[[np.ndarray], np.ndarray]

MICRO_BATCH_ELEMENTS_PER_THREAD = 2**21
"""Values per intra-op thread that the widest activation of one micro-batch may hold
(``micro_batch="auto"``). Counted in values, not bytes: on the machine measured the best
micro-batch was the same for fp32 and bf16 (8 images for osnet_x1_0 and 32 for osnet_x0_25 at
256x128 with two threads; docs/deployment.md)."""


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bf16 convolutions natively (oneDNN's AVX512-BF16 / AMX kernels)."""
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def available_backends() -> list[str]:
    """Backends usable in this environment (optional packages installed, CPU support)."""
    out = ["eager", "fused"]
    if cpu_has_bf16():
        out.append("bf16")
    has_ort = bool(importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx"))
    if has_ort:
        out.append("onnxruntime")
    if importlib.util.find_spec("openvino"):
        out += ["openvino", "openvino-bf16"]
    if has_ort:  # the quantiser is ONNX Runtime's; OpenVINO runs its output
        out.append("onnxruntime-int8")
        if "openvino" in out:
            out.append("openvino-int8")
    return out


def widest_activation(model: nn.Module, size: tuple[int, int] = DEFAULT_SIZE) -> int:
    """Number of values in the largest tensor any submodule of ``model`` outputs for one ``size``
    image (one forward pass of a single image on the CPU, with hooks, on a copy of the model)."""
    probe = copy.deepcopy(model).cpu().float().eval()
    widest = 0

    def hook(_module, _inputs, output) -> None:
        nonlocal widest
        if isinstance(output, torch.Tensor):
            widest = max(widest, output.numel())

    handles = [m.register_forward_hook(hook) for m in probe.modules()]
    try:
        with torch.inference_mode():
            probe(torch.zeros(1, 3, *size))
    finally:
        for h in handles:
            h.remove()
    return widest


def auto_micro_batch(model: nn.Module, size: tuple[int, int] = DEFAULT_SIZE,
                     budget: int | None = None) -> int:
    """Images per micro-batch such that the widest activation holds at most ``budget`` values
    (at least 1 image).

    ``budget`` defaults to :data:`MICRO_BATCH_ELEMENTS_PER_THREAD` times torch's intra-op thread
    count. With two threads and 256x128 input: 8 for osnet_x1_0, 32 for osnet_x0_25.
    """
    if budget is None:
        budget = MICRO_BATCH_ELEMENTS_PER_THREAD * torch.get_num_threads()
    return max(1, budget // max(1, widest_activation(model, size)))


class TorchRunner:
    """Runs a PyTorch module. ``dtype`` bfloat16 casts weights and input; ``channels_last``
    feeds NHWC-strided input; ``micro_batch`` (images) splits larger batches into pieces of at
    most that many images (``None``: whole batches)."""

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 micro_batch: int | None = None) -> None:
        if micro_batch is not None and micro_batch < 1:
            raise UsageError(f"micro_batch must be >= 1 or None, got {micro_batch}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.channels_last = channels_last
        self.micro_batch = micro_batch
        if dtype != torch.float32:  # casting is in place: keep the caller's model as it is
            model = copy.deepcopy(model)
        self.model = model.to(self.device, dtype).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def run_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` tensor -> ``(N, D)`` float32 tensor on the CPU."""
        step = self.micro_batch
        if step is not None and len(x) > step:
            return torch.cat([self._forward(x[i:i + step]) for i in range(0, len(x), step)])
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        emb = out.embedding if hasattr(out, "embedding") else out
        return emb.float().cpu()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run_tensor(torch.from_numpy(np.ascontiguousarray(x))).numpy()


MIN_IMAGES_PER_STREAM = 4
""":func:`stream_count` gives a runner several streams only when the batch it will see holds at
least this many images per stream."""


STREAMED_BACKENDS = ("openvino", "openvino-bf16", "openvino-int8")
"""The backends that ``auto``, the extractor and ``omnireid bench`` run in several streams
(:func:`stream_count`). ONNX Runtime can (``streams=`` of :func:`make_runner`) but is left at one:
on the machine measured its streams were slower or no faster (docs/deployment.md)."""


def stream_count(num_threads: int, batch_size: int, backend: str | None = None) -> int:
    """Streams for a runner on ``num_threads`` threads that will see batches of ``batch_size``:
    one per thread when every stream gets at least :data:`MIN_IMAGES_PER_STREAM` images, else 1
    (the whole batch on all threads). Given a ``backend``, 1 for any not in
    :data:`STREAMED_BACKENDS`."""
    if backend is not None and backend not in STREAMED_BACKENDS:
        return 1
    if num_threads < 2 or batch_size < MIN_IMAGES_PER_STREAM * num_threads:
        return 1
    return num_threads


def _check_streams(streams: int, threads: int) -> int:
    if not isinstance(streams, int) or streams < 1:
        raise UsageError(f"streams must be a positive integer, got {streams!r}")
    return min(streams, threads)


def _split(x: np.ndarray, parts: int) -> list[np.ndarray]:
    """``x`` cut along the batch into ``parts`` contiguous pieces of near-equal size."""
    return [np.ascontiguousarray(c) for c in np.array_split(x, parts) if len(c)]


ORT_SPIN_ENV = "OMNIREID_ORT_SPIN"
"""Environment variable: ``0`` turns off the spinning of ONNX Runtime's worker threads between
calls (``session.intra_op.allow_spinning``). On by default, as in ONNX Runtime: back-to-back
calls start sooner (batch 1 ran 19-34 % faster with it on a 2-core AMD EPYC). Off suits a
process that runs other heavy work on the same cores between re-ID calls (a detector, another
runtime): while ONNX Runtime's threads spin, that work gets fewer cores (docs/deployment.md,
"Several runtimes in one process")."""


class OrtRunner:
    """ONNX Runtime session on an exported ``.onnx`` file; ``streams`` > 1 runs the parts of a
    batch concurrently on one session, each on ``num_threads // streams`` threads (ONNX
    Runtime's ``run`` is thread-safe and releases the GIL). Its threads spin between calls
    unless :data:`ORT_SPIN_ENV` is ``0``."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 streams: int = 1) -> None:
        ort = require("onnxruntime", "deploy", "the onnxruntime backend")
        threads = int(num_threads or torch.get_num_threads())
        self.streams = _check_streams(streams, threads)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = max(1, threads // self.streams)
        opts.inter_op_num_threads = 1
        spin = os.environ.get(ORT_SPIN_ENV, "1").strip()
        if spin not in ("0", "1"):
            raise UsageError(f"{ORT_SPIN_ENV} must be 0 or 1, got {spin!r}")
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self._pool = None
        if self.streams > 1:
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="omnireid-ort")

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self._pool is None or len(x) < self.streams:
            return self._run(x)
        return np.concatenate(list(self._pool.map(self._run, _split(x, self.streams))))


_OPENVINO_CORE = None
_OPENVINO_CORE_LOCK = threading.Lock()


def openvino_core():
    """The one ``openvino.Core`` of this process, created on first use and kept until exit.

    Every runner compiles its model with it. One Core per runner was unsafe: OpenVINO's CPU
    plugin (seen with 2026.4) gives the thread that loads it an alternate signal stack of its own
    and, when its Core is destroyed, puts back the stack it found. Two Cores destroyed in the
    other order than they were created leave that thread's alternate stack pointing at memory
    already freed. The next signal handled on that thread by a handler installed with
    ``SA_ONSTACK`` -- every Python-level handler is, such as the ``SIGCHLD`` handler that a
    PyTorch DataLoader with worker processes installs -- then has its frame written there: a
    segfault, or a corrupted heap and a crash later somewhere else
    (docs/deployment.md, "Streams"). A Core that lives as long as the
    process loads the plugin once and never takes its stack away."""
    global _OPENVINO_CORE
    with _OPENVINO_CORE_LOCK:
        if _OPENVINO_CORE is None:
            ov = require("openvino", "openvino", "the openvino backend")
            _OPENVINO_CORE = ov.Core()
        return _OPENVINO_CORE


class OpenVINORunner:
    """OpenVINO compiled model (from ``.xml`` IR or ``.onnx``) on the CPU plugin, compiled with
    the process's one Core (:func:`openvino_core`); ``streams`` > 1 compiles it with that many
    streams of ``num_threads // streams`` threads and runs the parts of a batch as concurrent
    inference requests."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None,
                 bf16: bool = False, streams: int = 1) -> None:
        core = openvino_core()
        threads = int(num_threads or torch.get_num_threads())
        self.streams = _check_streams(streams, threads)
        config = {
            "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY" if self.streams == 1 else "THROUGHPUT",
            "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32",
        }
        if self.streams > 1:
            config["NUM_STREAMS"] = self.streams
        self.compiled = core.compile_model(str(path), "CPU", config)
        self.requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        self.request = self.requests[0]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.streams == 1 or len(x) < self.streams:
            result = self.request.infer({0: x})
            return np.asarray(next(iter(result.values())), dtype=np.float32).copy()
        parts = _split(x, self.streams)
        for request, part in zip(self.requests, parts):
            request.start_async({0: part})
        out = []
        for request in self.requests[:len(parts)]:
            request.wait()
            out.append(np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy())
        return np.concatenate(out)


def freeze_for_cpu(model: nn.Module, size: tuple[int, int] = DEFAULT_SIZE) -> nn.Module:
    """TorchScript trace + ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference`` of a
    channels-last fp32 model (oneDNN weight prepacking, conv+ReLU fusion). Works for any batch
    size. Returns ``model`` unchanged, with a log message, where TorchScript is unavailable."""
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
    micro_batch: int | str | None = "auto",
    calibration: np.ndarray | None = None,
    streams: int = 1,
) -> Runner:
    """Build a runner for ``backend`` (one of :data:`BACKENDS`).

    ``model`` is an ``nn.Module`` or, for ``onnxruntime*``/``openvino*``, also a path to an
    exported file. PyTorch modules given to those backends are exported first (to ``cache_dir``,
    or a temporary folder). The ``*-int8`` backends quantise the exported graph (or an fp32
    ``.onnx`` given as ``model``; an already quantised one is used as it is) on ``calibration``:
    ``(N, 3, H, W)`` preprocessed crops, by default the synthetic ones
    (:func:`omnireid.inference.quantize.calibration_batch`).

    ``micro_batch`` applies to the PyTorch backends: ``"auto"`` (default) sizes micro-batches
    with :func:`auto_micro_batch` for ``fused`` and ``bf16`` on the CPU and leaves ``eager`` and
    other devices whole; an int forces that size; ``None`` runs whole batches.

    ``streams`` applies to the ONNX Runtime and OpenVINO backends (see the module's text;
    :func:`stream_count` gives the number ``auto`` uses for a batch size).
    """
    if isinstance(micro_batch, str) and micro_batch != "auto":
        raise UsageError(f"micro_batch must be 'auto', an int or None, got {micro_batch!r}")
    build = lookup("backend", backend, BACKEND_TABLE).build
    return build(model, size=size, device=torch.device(device or "cpu"), num_threads=num_threads,
                 cache_dir=cache_dir, micro_batch=micro_batch, calibration=calibration,
                 streams=streams)


def _torch_model(name: str, model: nn.Module | str | os.PathLike) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise UsageError(f"backend {name!r} needs a PyTorch model, got {model!r}")
    return model


def _cpu_micro_batch(model: nn.Module, size: tuple[int, int], device: torch.device,
                     micro_batch: int | str | None) -> int | None:
    """``"auto"``: :func:`auto_micro_batch` on the CPU, whole batches elsewhere."""
    if micro_batch != "auto":
        return micro_batch  # type: ignore[return-value]
    return auto_micro_batch(model, size) if device.type == "cpu" else None


def _eager(model, *, device: torch.device, micro_batch, **_) -> Runner:
    model = _torch_model("eager", model)
    return TorchRunner(model, device, micro_batch=None if micro_batch == "auto" else micro_batch)


def _fused(model, *, size, device: torch.device, micro_batch, **_) -> Runner:
    model = _torch_model("fused", model)
    micro_batch = _cpu_micro_batch(model, size, device, micro_batch)
    cpu = device.type == "cpu"
    runner = TorchRunner(optimize_for_inference(model, channels_last=cpu), device,
                         channels_last=cpu, micro_batch=micro_batch)
    if cpu:
        runner.model = freeze_for_cpu(runner.model, size)
    return runner


def _bf16(model, *, size, device: torch.device, micro_batch, **_) -> Runner:
    model = _torch_model("bf16", model)
    micro_batch = _cpu_micro_batch(model, size, device, micro_batch)
    cpu = device.type == "cpu"
    fast = optimize_for_inference(model, channels_last=cpu)
    if cpu and not cpu_has_bf16():
        logger.warning("this CPU has no native bf16 support; bf16 will be slow")
    return TorchRunner(fast, device, dtype=torch.bfloat16, channels_last=cpu, micro_batch=micro_batch)


def _exported(model, size, cache_dir, calibration, int8: bool) -> Path:
    """The ONNX file to run: ``model`` itself when it is a path, else exported to ``cache_dir``
    (or a temporary folder); quantised to int8 when ``int8`` and it is not already."""
    folder = Path(cache_dir) if cache_dir else Path(tempfile.mkdtemp(prefix="omnireid-"))
    path = export_onnx(model, folder / "model.onnx", size) if isinstance(model, nn.Module) else Path(model)
    if int8 and not is_quantized(path):
        if calibration is None:
            calibration = calibration_batch(None, size, IMAGENET_MEAN, IMAGENET_STD)
        path = quantize_onnx_int8(path, folder / "model-int8.onnx", calibration)
    return path


def _onnxruntime(model, *, size, num_threads, cache_dir, calibration, streams, **_) -> Runner:
    return OrtRunner(_exported(model, size, cache_dir, calibration, int8=False), num_threads, streams)


def _onnxruntime_int8(model, *, size, num_threads, cache_dir, calibration, streams, **_) -> Runner:
    return OrtRunner(_exported(model, size, cache_dir, calibration, int8=True), num_threads, streams)


def _openvino(model, *, size, num_threads, cache_dir, calibration, streams, **_) -> Runner:
    return OpenVINORunner(_exported(model, size, cache_dir, calibration, int8=False), num_threads,
                          streams=streams)


def _openvino_bf16(model, *, size, num_threads, cache_dir, calibration, streams, **_) -> Runner:
    return OpenVINORunner(_exported(model, size, cache_dir, calibration, int8=False), num_threads,
                          bf16=True, streams=streams)


def _openvino_int8(model, *, size, num_threads, cache_dir, calibration, streams, **_) -> Runner:
    # bf16 for what OpenVINO leaves in float: in fp32 its zero-point subtractions took 24 % of
    # osnet_x1_0's time (batch 16, two threads, AMD EPYC with AVX512-BF16), in bf16 0.4 %; the
    # path ran 1.04-1.44x faster, embeddings 0.99999 apart (docs/deployment.md, "int8"). The
    # int8 accuracy gate covers the difference.
    return OpenVINORunner(_exported(model, size, cache_dir, calibration, int8=True), num_threads,
                          bf16=cpu_has_bf16(), streams=streams)


@dataclass(frozen=True)
class Backend:
    """One way of running a model: its arithmetic (``fp32`` paths give the eager model's
    embeddings to float rounding; ``bf16`` and ``int8`` ones change them and are checked by an
    accuracy gate) and the function that builds its runner."""

    precision: str
    build: Callable[..., Runner]


#: The backends by name (see the table at the top of this module).
BACKEND_TABLE: dict[str, Backend] = {
    "eager": Backend("fp32", _eager),
    "fused": Backend("fp32", _fused),
    "bf16": Backend("bf16", _bf16),
    "onnxruntime": Backend("fp32", _onnxruntime),
    "openvino": Backend("fp32", _openvino),
    "openvino-bf16": Backend("bf16", _openvino_bf16),
    "onnxruntime-int8": Backend("int8", _onnxruntime_int8),
    "openvino-int8": Backend("int8", _openvino_int8),
}
BACKENDS: tuple[str, ...] = tuple(BACKEND_TABLE)
BACKEND_PRECISION: dict[str, str] = {name: b.precision for name, b in BACKEND_TABLE.items()}


@dataclass
class ParityReport:
    """Exported model vs PyTorch on the same random batches."""

    path: str
    backend: str
    batch_sizes: list[int]
    max_abs_diff: float
    max_abs_value: float
    min_cosine: float = 1.0


@torch.no_grad()
def check_parity(
    model: nn.Module,
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    batch_sizes: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> ParityReport:
    """Run the exported file (ONNX Runtime for ``.onnx``, OpenVINO for ``.xml``) and PyTorch
    on the same seeded random inputs (``size``: default the model's recorded input size);
    report the largest absolute embedding difference."""
    path = Path(path)
    size = size or preprocessing_of(model).input_size
    backend = "openvino" if path.suffix == ".xml" else "onnxruntime"
    runner = make_runner(backend, path)
    ref_model = model.cpu().float().eval()
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    largest = 0.0
    min_cos = 1.0
    for b in batch_sizes:
        x = torch.randn(b, 3, *size, generator=gen)
        ref = ref_model(x).embedding.numpy()
        out = runner(x.numpy())
        if out.shape != ref.shape:
            raise ValueError(f"{path}: output shape {out.shape} != PyTorch {ref.shape}")
        worst = max(worst, float(np.abs(out - ref).max()))
        largest = max(largest, float(np.abs(ref).max()))
        min_cos = min(min_cos, float(cosine_rows(out, ref).min()))
    return ParityReport(str(path), backend, list(batch_sizes), worst, largest, min_cos)


def is_quantized(path: str | os.PathLike) -> bool:
    """Whether an exported model holds int8 quantisation (QDQ pairs in ONNX, FakeQuantize in
    OpenVINO IR)."""
    path = Path(path)
    if path.suffix == ".xml":
        return "FakeQuantize" in path.read_text(errors="replace")
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
