"""openvino-int8 with the int8 graph's float operations in fp32 against bf16, interleaved.

Both runners compile the same quantised graph (synthetic calibration) and differ only in
OpenVINO's ``INFERENCE_PRECISION_HINT`` (``f32`` / ``bf16``), which sets the precision of the
operations the graph leaves in float. Timed with :func:`omnireid.inference.bench.time_interleaved`
on one seeded random batch, ``--repeats`` times, at one stream and at one stream per thread.

    python benchmarks/bench_openvino_int8_float_ops.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from omnireid.inference.autoselect import cpu_signature


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.runtime import OpenVINORunner, _exported, cpu_has_bf16
    from omnireid.models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = (256, 128)
    model = create_model(args.model).eval()
    graph = _exported(model, size, Path(tempfile.mkdtemp(prefix="bench-ov-int8-")), None, int8=True)
    x = torch.randn(args.batch, 3, *size, generator=torch.Generator().manual_seed(0)).numpy()
    print(f"CPU: {cpu_signature()['name']} ({os.cpu_count()} CPUs, native bf16: {cpu_has_bf16()}); "
          f"{args.model} at 256x128, batch {args.batch}, {args.threads} threads; "
          f"load before: {os.getloadavg()[0]:.2f}")
    for streams in sorted({1, args.threads}):
        runners = {f"float ops {p}": OpenVINORunner(graph, args.threads, bf16=p == "bf16",
                                                    streams=streams) for p in ("fp32", "bf16")}
        a, b = (run(x) for run in runners.values())
        cos = float(np.mean((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
        for rep in range(args.repeats):
            t = time_interleaved(runners, x, rounds=args.rounds, warmup=2)
            rates = {n: args.batch / statistics.median(v) for n, v in t.items()}
            print(f"streams {streams}, run {rep + 1}: " + "; ".join(
                f"{n} {r:.1f} img/s" for n, r in rates.items())
                + f"; bf16 / fp32 {rates['float ops bf16'] / rates['float ops fp32']:.2f}x"
                + (f"; mean cosine between them {cos:.5f}" if rep == 0 else ""), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
