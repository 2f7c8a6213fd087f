"""Ways to run one batch as OpenVINO streams, one per thread, against the single-stream runner the library uses.

The library's OpenVINO runners compile one model in OpenVINO's latency mode with all threads and
run a whole batch on it. Splitting a batch into one part per thread and running the parts at the same
time keeps small layers from making the threads wait for each other (docs/deployment.md,
"Tried and not shipped: streams"). This script times, interleaved in one process on the same
exported graph and the same random batch:

- ``1 model, N threads``: what the library does (latency mode, ``INFERENCE_NUM_THREADS`` = N);
- ``N models x 1 thread, pinned``: N latency-mode models of one thread each, the N parts of the
  batch run from N Python threads (OpenVINO's ``infer`` releases the GIL), OpenVINO's default
  CPU pinning;
- ``N models x 1 thread, not pinned``: the same with ``ENABLE_CPU_PINNING`` off;
- ``throughput mode, N streams``: one model compiled with ``PERFORMANCE_HINT=THROUGHPUT`` and
  ``NUM_STREAMS=N``, the parts run as N asynchronous requests (what the library ran at
  commit 69586fa, before commit 627a653 took it out again).

Rounds are interleaved with :func:`omnireid.inference.bench.time_interleaved`. It prints
images/s per variant (median over rounds) and the largest difference of each
variant's embeddings from the single-stream runner's.

    python benchmarks/bench_openvino_streams.py --model osnet_x0_25 --batch 64 --precision bf16
    python benchmarks/bench_openvino_streams.py --model osnet_x0_25 --batch 64 --precision f32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
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

    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.runtime import openvino_core
    from omnireid.models import create_model

    torch.manual_seed(0)
    parts = a.threads
    core = openvino_core()  # the process's one Core (see omnireid.inference.runtime.openvino_core)
    with tempfile.TemporaryDirectory(prefix="bench_ov_streams_") as tmp:
        onnx = export_onnx(create_model(a.model).eval(), Path(tmp) / "model.onnx", size=tuple(a.size))

        def compiled(threads: int, **extra):
            config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                      "INFERENCE_PRECISION_HINT": a.precision, **extra}
            return core.compile_model(str(onnx), "CPU", config)

        single = compiled(a.threads).create_infer_request()
        pinned = [compiled(1).create_infer_request() for _ in range(parts)]
        free = [compiled(1, ENABLE_CPU_PINNING=False).create_infer_request() for _ in range(parts)]
        tput = compiled(a.threads, PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=parts)
        tput_requests = [tput.create_infer_request() for _ in range(parts)]
    pool = ThreadPoolExecutor(parts)

    def output(result) -> np.ndarray:
        return np.asarray(next(iter(result.values())), dtype=np.float32).copy()

    def run_single(x: np.ndarray) -> np.ndarray:
        return output(single.infer({0: x}))

    def per_thread_models(requests):
        def run(x: np.ndarray) -> np.ndarray:
            return np.concatenate(list(pool.map(lambda r, h: output(r.infer({0: h})), requests,
                                                np.array_split(x, parts))))
        return run

    def run_tput(x: np.ndarray) -> np.ndarray:
        for request, part in zip(tput_requests, np.array_split(x, parts)):
            request.start_async({0: part})
        out = []
        for request in tput_requests:
            request.wait()
            out.append(np.asarray(request.get_output_tensor(0).data, dtype=np.float32).copy())
        return np.concatenate(out)

    baseline = f"1 model, {a.threads} threads"
    variants = {baseline: run_single,
                f"{parts} models x 1 thread, pinned": per_thread_models(pinned),
                f"{parts} models x 1 thread, not pinned": per_thread_models(free),
                f"throughput mode, {parts} streams": run_tput}
    x = np.random.default_rng(0).standard_normal((a.batch, 3, *a.size), dtype=np.float32)
    times = time_interleaved(variants, x, rounds=a.rounds)
    ref = run_single(x)
    base = a.batch / statistics.median(times[baseline])
    print(f"{a.model}, batch {a.batch}, {a.size[0]}x{a.size[1]}, {a.precision}, {a.threads} threads, "
          f"OpenVINO {ov.__version__}, {a.rounds} rounds (median)")
    print(f"{'variant':34s} {'img/s':>8s} {'x 1 model':>10s} {'max |diff|':>11s}")
    for name, run in variants.items():
        ips = a.batch / statistics.median(times[name])
        diff = float(np.abs(run(x) - ref).max())
        print(f"{name:34s} {ips:8.1f} {ips / base:9.2f}x {diff:11.1e}")


if __name__ == "__main__":
    main()
