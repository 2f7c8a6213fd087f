"""Throughput of the execution backends, measured side by side in one process.

Rounds are interleaved (every backend runs once per round) so that a machine whose load changes
during the run penalises all backends alike; the median over rounds is reported.

:func:`matmul_rates` times one large dense matrix product in fp32 and bf16: the arithmetic rate a
convolutional network can at best reach on this machine. Dividing it by a path's rate (the
model's multiply-adds per second) tells how much faster any exact path could still be.
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

from omnireid.inference.preprocess import DEFAULT_SIZE
from omnireid.inference.runtime import available_backends, make_runner
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


def matmul_rates(n: int = 2048, repeats: int = 10) -> dict[str, float]:
    """Billions of multiply-adds per second of an ``n x n`` by ``n x n`` matrix product, best of
    ``repeats``, with torch's current thread count: ``{"fp32": ..., "bf16": ...}``."""
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        for _ in range(2):
            torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        out[name] = n ** 3 / best / 1e9
    return out


def time_interleaved(
    runners: dict[str, Callable[[np.ndarray], np.ndarray]],
    x: np.ndarray,
    rounds: int = 5,
    warmup: int = 2,
    min_seconds: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per call of each runner on ``x``, ``rounds`` interleaved rounds after warm-up.

    With ``min_seconds`` > 0, keeps adding rounds until every runner has spent that long.
    """
    for _ in range(warmup):
        for run in runners.values():
            run(x)
    times: dict[str, list[float]] = {name: [] for name in runners}
    r = 0
    while r < rounds or (min_seconds and min(sum(t) for t in times.values()) < min_seconds):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[name].append(time.perf_counter() - start)
        r += 1
    return times


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
) -> list[BenchRow]:
    """Images/s of each backend (default: all available) and of ``extra_runners``, beside the
    ``baseline`` runner, for each batch size. Input: seeded random ``(B, 3, H, W)`` batches."""
    names = list(backends or available_backends())
    if baseline not in names and baseline not in (extra_runners or {}):
        names.insert(0, baseline)
    model = model.cpu().float().eval()
    mult_adds = model_complexity(model, size).mult_adds
    runners: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for name in names:
        logger.info("preparing backend %s", name)
        runners[name] = make_runner(name, model, size)
    runners.update(extra_runners or {})
    rows = []
    gen = torch.Generator().manual_seed(seed)
    for b in batch_sizes:
        x = torch.randn(b, 3, *size, generator=gen).numpy()
        ref = runners[baseline](x)
        times = time_interleaved(runners, x, rounds, warmup)
        base_ips = b / statistics.median(times[baseline])
        for name, t in times.items():
            ips = b / statistics.median(t)
            diff = float(np.abs(runners[name](x) - ref).max())
            rows.append(BenchRow(name, b, ips, ips / base_ips, diff, t, ips * mult_adds / 1e9))
    return rows
