"""`omnireid bench --model NAME`: images/s of every available inference path."""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from omnireid.cli import CLIError
from omnireid.cli.util import positive_int, positive_int_list, print_table, size_arg
from omnireid.files import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="measure inference throughput of every available backend",
        description="Runs the plain eager model and each available fast path (fused PyTorch, "
                    "bf16, ONNX Runtime, OpenVINO) on the same random batches, interleaved, and "
                    "prints images/s, the speed-up over eager and the largest embedding "
                    "difference. The allocator in use (e.g. LD_PRELOAD=libtcmalloc) affects "
                    "all paths; it is printed. So is the rate of a large matrix product on "
                    "this machine, the most any exact path can reach.")
    p.add_argument("--model", default="osnet_x1_0", help="model name (default osnet_x1_0)")
    p.add_argument("--weights", help="checkpoint to load (random weights otherwise)")
    p.add_argument("--batch-sizes", type=positive_int_list, default=[1, 16, 64],
                   help="comma-separated (default 1,16,64)")
    p.add_argument("--input", type=size_arg, default=(256, 128), help="input size HxW (default 256x128)")
    p.add_argument("--backends", help="comma-separated subset (default: all available)")
    p.add_argument("--rounds", type=positive_int, default=5, help="timed rounds per backend (default 5)")
    p.add_argument("--threads", type=positive_int, help="torch/runtime threads (default: torch's)")
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from omnireid.inference.bench import bench_backends, matmul_rates
    from omnireid.inference.runtime import available_backends
    from omnireid.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else available_backends()
    unknown = [b for b in backends if b not in available_backends()]
    if unknown or not backends:
        raise CLIError(f"--backends {args.backends!r}: {', '.join(unknown) or 'none'} not available here; "
                       f"available: {', '.join(available_backends())}")
    model = create_model(args.model, weights=args.weights).eval()
    batches = args.batch_sizes
    size = args.input
    allocator = os.environ.get("LD_PRELOAD", "") or "default (glibc malloc)"
    print(f"model {args.model}, input {size[0]}x{size[1]}, threads {torch.get_num_threads()}, "
          f"allocator {allocator}")
    rows = bench_backends(model, backends, batches, size, rounds=args.rounds,
                          warmup=3)
    print_table(["backend", "batch", "images/s", "vs eager", "GMAC/s", "max |diff|"],
                [[r.backend, r.batch, f"{r.images_per_s:.1f}", f"{r.speedup:.2f}x",
                  f"{r.gmacs_per_s:.1f}", f"{r.max_abs_diff:.1e}"] for r in rows])
    ceiling = matmul_rates()
    print(f"a 2048x2048 matrix product runs at {ceiling['fp32']:.1f} GMAC/s (fp32) and "
          f"{ceiling['bf16']:.1f} GMAC/s (bf16) here: no exact path can exceed those rates")
    if args.json_path:
        write_json(args.json_path, {"model": args.model, "input": f"{size[0]}x{size[1]}", "allocator": allocator,
                                    "threads": torch.get_num_threads(), "matmul_gmacs_per_s": ceiling,
                                    "rows": [asdict(r) for r in rows]})
        print(f"wrote {args.json_path}")
    return 0
