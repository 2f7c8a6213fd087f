"""Smaller OpenVINO requests: does cutting a batch into more parts than streams run faster?

The OpenVINO runners cut a batch into one part per stream (:mod:`omnireid.inference.runtime`).
Smaller parts keep a layer's activations in the cores' caches; more requests than streams let
OpenVINO start the next part on a stream as soon as one ends. Here each OpenVINO backend is
compiled once, with the streams ``auto`` uses, and called two ways on the same seeded batch:
as the library does, and with the batch cut into ``P`` parts queued on ``R`` infer requests of
the same compiled model, for every ``P`` of ``--parts`` and ``R`` of ``--requests``. All run
interleaved round by round (:func:`omnireid.inference.bench.time_interleaved`), the eager model
in the same rounds as the baseline; outputs must match the library's call to 1e-2 (the same
network, the parts computed independently).

    python benchmarks/bench_ov_requests.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import deque
from pathlib import Path

import numpy as np
import torch

from omnireid.inference.autoselect import cpu_signature


def queued(runner, parts: int, requests: int):
    """A call of ``runner``'s compiled model with the batch cut into ``parts`` parts, at most
    ``requests`` of them in flight, in order."""
    reqs = [runner.compiled.create_infer_request() for _ in range(requests)]

    def call(x: np.ndarray) -> np.ndarray:
        pieces = deque(enumerate(np.array_split(np.ascontiguousarray(x, dtype=np.float32), parts)))
        out: list = [None] * len(pieces)
        active = deque()
        for req in reqs:
            if pieces:
                i, piece = pieces.popleft()
                req.start_async({0: np.ascontiguousarray(piece)})
                active.append((req, i))
        while active:
            req, i = active.popleft()
            req.wait()
            out[i] = np.asarray(req.get_output_tensor(0).data, dtype=np.float32).copy()
            if pieces:
                j, piece = pieces.popleft()
                req.start_async({0: np.ascontiguousarray(piece)})
                active.append((req, j))
        return np.concatenate(out)
    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backends", nargs="+", default=["openvino-bf16", "openvino-int8"])
    p.add_argument("--parts", nargs="+", type=int, default=[4, 8, 16])
    p.add_argument("--requests", nargs="+", type=int, default=[2, 4])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.runtime import available_backends, make_runner, stream_count
    from omnireid.models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    onnx = export_onnx(model, Path(tempfile.mkdtemp(prefix="bench-ov-requests-")) / "model.onnx")
    print(f"CPU: {cpu_signature()['name']} ({os.cpu_count()} CPUs); torch {torch.__version__}; {args.model} "
          f"at 256x128, batch {args.batch}, {args.threads} threads; load before: "
          f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    runners = {"eager": make_runner("eager", model)}
    library_call = {}  # label of a variant -> the library's call of the same compiled model
    for name in (b for b in args.backends if b in available_backends()):
        streams = stream_count(args.threads, args.batch, name)
        lib = make_runner(name, onnx, num_threads=args.threads, streams=streams)
        runners[f"{name}: {streams} parts (library)"] = lib
        for parts in args.parts:
            for requests in args.requests:
                if streams < parts <= args.batch:
                    label = f"{name}: {parts} parts on {requests} requests"
                    runners[label] = queued(lib, parts, requests)
                    library_call[label] = lib
    x = torch.randn(args.batch, 3, 256, 128, generator=torch.Generator().manual_seed(0)).numpy()
    for label, lib in library_call.items():
        diff = float(np.abs(runners[label](x) - lib(x)).max())
        if diff > 1e-2:
            raise SystemExit(f"{label}: output differs from the library's call by {diff}")
    times = time_interleaved(runners, x, args.rounds, warmup=2)
    eager = args.batch / statistics.median(times["eager"])
    print("| path | img/s per round | median img/s | x eager |")
    print("| --- | --- | ---: | ---: |")
    for label, t in times.items():
        ips = [args.batch / s for s in t]
        print(f"| {label} | {', '.join(f'{v:.1f}' for v in ips)} | {statistics.median(ips):.1f} | "
              f"{statistics.median(ips) / eager:.2f}x |")
    print(f"load after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")


if __name__ == "__main__":
    main()
