"""One stream on every thread against one stream per thread, for the ONNX Runtime and OpenVINO paths.

Each backend is built twice from the same exported graph: ``streams=1`` (the whole batch on all
threads, each layer split between them) and ``streams=T`` (the batch cut into T parts run at the
same time, one thread each; see :mod:`omnireid.inference.runtime`). Both run on the same seeded
random batch, interleaved round by round (:func:`omnireid.inference.bench.time_interleaved`), so
they see the same machine load; the eager model is timed in the same rounds as the baseline.
Printed per backend and batch size: images/s of both, their ratio, each one's multiply-adds per
second as a share of the matrix-product ceiling of its own arithmetic (measured in the same run),
and the largest embedding difference between the two (the parts are computed independently, so
it is float rounding).

Examples::

    python benchmarks/bench_streams.py --model osnet_x0_25 --batch-sizes 16 64 --threads 2
    python benchmarks/bench_streams.py --model osnet_x1_0 --batch-sizes 16 64 --threads 2 \\
        --backends onnxruntime openvino-bf16 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from omnireid.inference.autoselect import cpu_signature


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x0_25")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backends", nargs="+",
                   default=["onnxruntime", "openvino", "openvino-bf16", "openvino-int8"])
    p.add_argument("--size", nargs=2, type=int, default=[256, 128])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    args = p.parse_args()

    from omnireid.inference.bench import matmul_rates, time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.runtime import BACKEND_PRECISION, available_backends, make_runner
    from omnireid.models import create_model, model_complexity

    torch.set_num_threads(args.threads)
    size = tuple(args.size)
    backends = [b for b in args.backends if b in available_backends()]
    model = create_model(args.model).eval()
    macs = model_complexity(model, size).mult_adds
    folder = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    onnx = export_onnx(model, folder / "model.onnx", size)
    print(f"CPU: {cpu_signature()['name']} ({os.cpu_count()} CPUs); torch {torch.__version__}; "
          f"{args.model} at {size[0]}x{size[1]}; {args.threads} threads; load before: "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    runners = {"eager": make_runner("eager", model, size)}
    for name in backends:
        runners[f"{name} x1"] = make_runner(name, onnx, size, num_threads=args.threads, streams=1)
        runners[f"{name} x{args.threads}"] = make_runner(name, onnx, size, num_threads=args.threads,
                                                          streams=args.threads)
    rates = matmul_rates()
    rows = []
    gen = torch.Generator().manual_seed(0)
    for b in args.batch_sizes:
        x = torch.randn(b, 3, *size, generator=gen).numpy()
        times = time_interleaved(runners, x, args.rounds, warmup=2)
        ips = {k: b / statistics.median(t) for k, t in times.items()}
        for name in backends:
            one, many = f"{name} x1", f"{name} x{args.threads}"
            rate = rates.get(BACKEND_PRECISION[name])
            diff = float(np.abs(runners[one](x) - runners[many](x)).max())
            rows.append({"backend": name, "batch": b, "eager": ips["eager"], "one_stream": ips[one],
                         "streams": ips[many], "ratio": ips[many] / ips[one],
                         "vs_eager": ips[many] / ips["eager"],
                         "share_one": ips[one] * macs / 1e9 / rate if rate else None,
                         "share_streams": ips[many] * macs / 1e9 / rate if rate else None,
                         "max_abs_diff": diff, "precision": BACKEND_PRECISION[name]})
    print("ceilings (same run): " + ", ".join(f"{k} {v:.1f} GMAC/s" for k, v in rates.items()))
    print(f"| backend | batch | eager img/s | 1 stream img/s | {args.threads} streams img/s | "
          f"ratio | {args.threads} streams vs eager | share of ceiling (1 / {args.threads} streams) "
          f"| max diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for r in rows:
        share = ("-" if r["share_one"] is None else
                 f"{100 * r['share_one']:.0f} % / {100 * r['share_streams']:.0f} % {r['precision']}")
        print(f"| {r['backend']} | {r['batch']} | {r['eager']:.1f} | {r['one_stream']:.1f} | "
              f"{r['streams']:.1f} | {r['ratio']:.2f}x | {r['vs_eager']:.2f}x | {share} | "
              f"{r['max_abs_diff']:.1e} |")
    print(f"load after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "threads": args.threads,
                                         "cpu": cpu_signature()["name"], "ceilings": rates, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
    main()
