"""Throughput of the execution backends, measured side by side in one process.

Rounds are interleaved (every backend runs once per round) so that a machine whose load changes
during the run penalises all backends alike; the median over rounds is reported.

:func:`matmul_rates` times one large dense matrix product in fp32, bf16 and int8: the arithmetic
rate a convolutional network can at best reach on this machine in that arithmetic. A path's rate
(the model's multiply-adds per second) as a share of the rate of its own arithmetic tells how
much faster that kind of path could still be.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from omnireid.inference.autoselect import EXACT_TOLERANCE
from omnireid.inference.preprocess import DEFAULT_SIZE
from omnireid.inference.runtime import (
    BACKEND_PRECISION,
    PRECISIONS,
    STREAMED_BACKENDS,
    available_backends,
    make_runner,
)
from omnireid.models.complexity import model_complexity

logger = logging.getLogger(__name__)


@dataclass
class BenchRow:
    """One backend at one batch size.

    Attributes:
        backend: runner name; batch: images per call; images_per_s: median throughput;
        speedup: ``images_per_s`` over the baseline's at the same batch size;
        max_abs_diff: largest embedding difference to the baseline on the same batch;
        gmacs_per_s: the model's multiply-adds per second at that throughput (billions).
    """

    backend: str
    batch: int
    images_per_s: float
    speedup: float
    max_abs_diff: float
    seconds_per_batch: list[float]
    gmacs_per_s: float = 0.0
    precision: str = "fp32"
    ceiling_share: float | None = None  # gmacs_per_s / the matrix-product rate of `precision`
    exact: bool = True  # within autoselect.EXACT_TOLERANCE of the baseline
    streams: int = 1  # parts of the batch run at the same time (ONNX Runtime / OpenVINO)


def matmul_rates(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Billions of multiply-adds per second of an ``n x n`` by ``n x n`` matrix product, best of
    ``repeats``, with torch's current thread count: ``{"fp32": ..., "bf16": ..., "int8": ...}``.

    Each is the faster of the libraries the paths use, where available: fp32 of ``torch.mm`` and
    ONNX Runtime's ``MatMul`` (on an AMD EPYC, Zen 5, ONNX Runtime's fp32 product ran at twice
    ``torch.mm``'s rate, and its convolutions above ``torch.mm``'s: a ceiling from ``torch.mm``
    alone was no ceiling there); bf16 is ``torch.mm``; int8 of ``torch._int_mm`` (int8 x int8 ->
    int32) and ONNX Runtime's ``MatMulInteger`` (uint8 x int8, the kernels its int8 convolutions
    use).
    """
    def best_of(fn) -> float:
        for _ in range(2):
            fn()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        return n ** 3 / best / 1e9

    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        out[name] = best_of(lambda a=a, b=b: torch.mm(a, b))
    ort_fp32 = _ort_fp32_matmul_rate(n, best_of)
    if ort_fp32 is not None:
        out["fp32"] = max(out["fp32"], ort_fp32)
    int8 = []
    a8 = torch.randint(-128, 128, (n, n), dtype=torch.int8)
    b8 = torch.randint(-128, 128, (n, n), dtype=torch.int8)
    try:
        int8.append(best_of(lambda: torch._int_mm(a8, b8)))
    except (RuntimeError, AttributeError, NotImplementedError):
        pass
    ort_rate = _ort_int8_matmul_rate(n, best_of)
    if ort_rate is not None:
        int8.append(ort_rate)
    if int8:
        out["int8"] = max(int8)
    return out


def _ort_matmul_rate(n: int, best_of, op: str, x: np.ndarray, w: np.ndarray, out_type: str) -> float | None:
    """``best_of`` timing of ONNX Runtime running ``x @ w`` with the operator ``op`` (``MatMul``,
    ``MatMulInteger``), ``w`` a constant of the graph; None without ONNX Runtime."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    elem = helper.np_dtype_to_tensor_dtype
    graph = helper.make_graph(
        [helper.make_node(op, ["x", "w"], ["y"])], "matmul",
        [helper.make_tensor_value_info("x", elem(x.dtype), [n, n])],
        [helper.make_tensor_value_info("y", getattr(TensorProto, out_type), [n, n])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(model.SerializeToString(), opts,
                                   providers=["CPUExecutionProvider"])
    return best_of(lambda: session.run(None, {"x": x}))


def _ort_fp32_matmul_rate(n: int, best_of) -> float | None:
    rng = np.random.default_rng(0)
    return _ort_matmul_rate(n, best_of, "MatMul", rng.standard_normal((n, n)).astype(np.float32),
                            rng.standard_normal((n, n)).astype(np.float32), "FLOAT")


def _ort_int8_matmul_rate(n: int, best_of) -> float | None:
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, (n, n)).astype(np.int8)
    x = rng.integers(0, 256, (n, n)).astype(np.uint8)
    return _ort_matmul_rate(n, best_of, "MatMulInteger", x, w, "INT32")


def ceiling_share(row: BenchRow, rates: dict[str, float]) -> float | None:
    """``row``'s multiply-adds per second as a share of the matrix-product rate of its own
    arithmetic (fp32, bf16 or int8); None where that rate was not measured."""
    rate = rates.get(row.precision)
    return row.gmacs_per_s / rate if rate else None


def time_interleaved(
    runners: dict[str, Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    rounds: int = 5,
    warmup: int = 2,
    min_seconds: float = 0.0,
    settle: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each runner on ``x``, ``rounds`` interleaved rounds after warm-up.

    With ``min_seconds`` > 0, keeps adding rounds until every runner has spent that long.

    Each timed call follows ``settle`` untimed calls of the same runner (none when there is only
    one runner). Without them, every timed call would start while the previous runner's worker
    threads were still spinning: ONNX Runtime's intra-op threads spin for tens of milliseconds
    after a call returns (``session.intra_op.allow_spinning``, on by default), and a runtime
    called in that time runs on fewer cores. Measured on a 2-core AMD EPYC (osnet_x1_0 int8,
    batch 16, two threads, two runs; ``benchmarks/bench_interleaving.py``, output in
    ``benchmarks/results/interleaving/``): OpenVINO called right after ONNX Runtime ran at
    246-253 images/s, 262-266 after a 10 ms pause, 408-416 after 100 ms, 405-409 after one call
    of its own, and 403-420 right after an ONNX Runtime whose spinning was off.
    """
    for _ in range(warmup):
        for run in runners.values():
            run(x)
    times: dict[str, list[float]] = {name: [] for name in runners}
    settle = settle if len(runners) > 1 else 0
    r = 0
    while r < rounds or (min_seconds and min(sum(t) for t in times.values()) < min_seconds):
        for name, run in runners.items():
            for _ in range(settle):
                run(x)
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
        r += 1
    return times


def build_runners(model: nn.Module, names: Sequence[str], size: tuple[int, int] = DEFAULT_SIZE,
                  streams: int = 1) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """One runner per backend name (int8 ones calibrated on the synthetic crops); the ones of
    :data:`~omnireid.inference.runtime.STREAMED_BACKENDS` run ``streams`` parts of a batch at
    the same time."""
    model = model.cpu().float().eval()
    runners = {}
    for name in names:
        logger.info("preparing backend %s", name)
        runners[name] = make_runner(name, model, size,
                                    streams=streams if name in STREAMED_BACKENDS else 1)
    return runners


def bench_backends(
    model: nn.Module,
    backends: Sequence[str] | None = None,
    batch_sizes: Sequence[int] = (1, 16, 64),
    size: tuple[int, int] = DEFAULT_SIZE,
    rounds: int = 5,
    warmup: int = 3,
    seed: int = 0,
    extra_runners: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    baseline: str = "eager",
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> list[BenchRow]:
    """Images/s of each backend (default: all available) and of ``extra_runners``, beside the
    ``baseline`` runner, for each batch size. Input: seeded random ``(B, 3, H, W)`` batches.
    ``runners`` (from :func:`build_runners`) are used instead of building ``backends``."""
    model = model.cpu().float().eval()
    if runners is None:
        names = list(backends or available_backends())
        if baseline not in names and baseline not in (extra_runners or {}):
            names.insert(0, baseline)
        runners = build_runners(model, names, size)
    runners = dict(runners)
    runners.update(extra_runners or {})
    if baseline not in runners:
        runners = {baseline: make_runner(baseline, model, size), **runners}
    mult_adds = model_complexity(model, size).mult_adds
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for b in batch_sizes:
        x = torch.randn(b, 3, *size, generator=gen).numpy()
        ref = runners[baseline](x)
        scale = max(1.0, float(np.abs(ref).max()))
        times = time_interleaved(runners, x, rounds, warmup)
        base_ips = b / statistics.median(times[baseline])
        for name, t in times.items():
            ips = b / statistics.median(t)
            diff = float(np.abs(runners[name](x) - ref).max())
            row = BenchRow(name, b, ips, ips / base_ips, diff, t, ips * mult_adds / 1e9,
                           BACKEND_PRECISION.get(name, "fp32"),
                           streams=getattr(runners[name], "streams", 1))
            row.exact = diff <= EXACT_TOLERANCE * scale
            rows.append(row)
    return rows


def auto_choice(rows: Sequence[BenchRow], batch: int, precision: str,
                gate_passed: dict[str, bool]) -> str | None:
    """What ``backend="auto"`` takes from these measurements: the fastest row at ``batch`` whose
    precision is at most ``precision``, exact if fp32, through its gate (``gate_passed``)
    otherwise; ``eager`` only when nothing else qualifies."""
    level = {p: i for i, p in enumerate(PRECISIONS)}
    ok = [r for r in rows if r.batch == batch and r.backend in BACKEND_PRECISION
          and level[r.precision] <= level[precision]
          and (r.exact if r.precision == "fp32" else gate_passed.get(r.backend, False))]
    ok = [r for r in ok if r.backend != "eager"] or ok
    return max(ok, key=lambda r: r.images_per_s).backend if ok else None
