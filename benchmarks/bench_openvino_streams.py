"""Ways to run one batch as two OpenVINO streams, against the single-stream runner the library uses.

The library's OpenVINO runners compile one model in OpenVINO's latency mode with all threads and
run a whole batch on it. Splitting a batch in two and running the halves at the same time, one
per thread, keeps small layers from making the threads wait for each other (docs/deployment.md,
"Tried and not shipped: streams"). This script times, interleaved in one process on the same
exported graph and the same random batch:

- ``1 model, N threads``: what the library does (latency mode, ``INFERENCE_NUM_THREADS`` = N);
- ``2 models x 1 thread, pinned``: two latency-mode models of one thread each, the halves run
  from two Python threads (OpenVINO's ``infer`` releases the GIL), OpenVINO's default CPU pinning;
- ``2 models x 1 thread, not pinned``: the same with ``ENABLE_CPU_PINNING`` off;
- ``throughput mode, 2 streams``: one model compiled with ``PERFORMANCE_HINT=THROUGHPUT`` and
  ``NUM_STREAMS=2``, the halves run as two asynchronous requests (what the library ran at
  commit 69586fa, before commit 627a653 took it out again).

It prints images/s per variant (median over rounds) and the largest difference of each
variant's embeddings from the single-stream runner's.

    python benchmarks/bench_openvino_streams.py --model osnet_x0_25 --batch 64 --precision bf16
    python benchmarks/bench_openvino_streams.py --model osnet_x0_25 --batch 64 --precision f32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x0_25")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--precision", choices=["f32", "bf16"], default="bf16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, nargs=2, default=(256, 128))
    a = p.parse_args()

    import numpy as np
    import openvino as ov
    import torch

    from omnireid.inference.export import export_onnx
    from omnireid.models import create_model

    torch.manual_seed(0)
    onnx = Path(tempfile.mkdtemp(prefix="bench_ov_streams_")) / "model.onnx"
    export_onnx(create_model(a.model).eval(), onnx, size=tuple(a.size))
    core = ov.Core()

    def compiled(threads: int, **extra):
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": a.precision, **extra}
        return core.compile_model(str(onnx), "CPU", config)

    single = compiled(a.threads).create_infer_request()
    pinned = [compiled(1).create_infer_request() for _ in range(2)]
    free = [compiled(1, ENABLE_CPU_PINNING=False).create_infer_request() for _ in range(2)]
    tput = compiled(a.threads, PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=2)
    tput_requests = [tput.create_infer_request() for _ in range(2)]
    pool = ThreadPoolExecutor(2)

    x = np.random.default_rng(0).standard_normal((a.batch, 3, *a.size), dtype=np.float32)
    halves = [np.ascontiguousarray(h) for h in np.array_split(x, 2)]

    def output(result) -> np.ndarray:
        return np.asarray(next(iter(result.values())), dtype=np.float32).copy()

    def run_single() -> np.ndarray:
        return output(single.infer({0: x}))

    def two_models(requests):
        def run() -> np.ndarray:
            return np.concatenate(list(pool.map(lambda i: output(requests[i].infer({0: halves[i]})),
                                                range(2))))
        return run

    def run_tput() -> np.ndarray:
        for request, half in zip(tput_requests, halves):
            request.start_async({0: half})
        out = []
        for request in tput_requests:
            request.wait()
            out.append(np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy())
        return np.concatenate(out)

    variants = {f"1 model, {a.threads} threads": run_single,
                "2 models x 1 thread, pinned": two_models(pinned),
                "2 models x 1 thread, not pinned": two_models(free),
                "throughput mode, 2 streams": run_tput}
    ref = run_single()
    diffs = {name: float(np.abs(fn() - ref).max()) for name, fn in variants.items()}  # also warms up
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(a.rounds):
        for name, fn in variants.items():
            t = time.perf_counter()
            fn()
            fn()
            times[name].append((time.perf_counter() - t) / 2)
    base = a.batch / statistics.median(times[f"1 model, {a.threads} threads"])
    print(f"{a.model}, batch {a.batch}, {a.size[0]}x{a.size[1]}, {a.precision}, {a.threads} threads, "
          f"OpenVINO {ov.__version__}, {a.rounds} rounds (median)")
    print(f"{'variant':34s} {'img/s':>8s} {'x 1 model':>10s} {'max |diff|':>11s}")
    for name in variants:
        ips = a.batch / statistics.median(times[name])
        print(f"{name:34s} {ips:8.1f} {ips / base:9.2f}x {diffs[name]:11.1e}")


if __name__ == "__main__":
    main()
