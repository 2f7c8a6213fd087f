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
                    "bf16, ONNX Runtime, OpenVINO, int8) on the same random batches, "
                    "interleaved, and prints images/s, the speed-up over eager, the "
                    "multiply-adds per second (GMAC/s) and their share of the rate of a large "
                    "matrix product in the path's own arithmetic (fp32, bf16 or int8, measured "
                    "in the same run), and the largest embedding difference. Then what "
                    "--backend auto would take here for each precision, with the bf16/int8 "
                    "accuracy gates. The allocator in use (e.g. LD_PRELOAD=libtcmalloc) "
                    "affects all paths; it is printed.")
    p.add_argument("--model", default="osnet_x1_0", help="model name (default osnet_x1_0)")
    p.add_argument("--weights", help="checkpoint to load (random weights otherwise)")
    p.add_argument("--batch-sizes", type=positive_int_list, default=[1, 16, 64],
                   help="comma-separated (default 1,16,64)")
    p.add_argument("--input", type=size_arg, default=(256, 128), help="input size HxW (default 256x128)")
    p.add_argument("--backends", help="comma-separated subset (default: all available)")
    p.add_argument("--rounds", type=positive_int, default=5, help="timed rounds per backend (default 5)")
    p.add_argument("--threads", type=positive_int, help="torch/runtime threads (default: torch's)")
    p.add_argument("--streams", default="auto",
                   help="OpenVINO: parts of a batch run at the same time; auto (default): a stream per "
                        "thread from 4 images per stream on, as backend auto does; N: always N")
    p.add_argument("--ceiling-size", type=positive_int, default=2048,
                   help="side of the square matrix product timed for the ceilings (default 2048; "
                        "smaller matrices reach less of the machine's rate)")
    p.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from omnireid.inference.autoselect import gate_runner
    from omnireid.inference.bench import (
        auto_choice,
        bench_backends,
        build_runners,
        ceiling_share,
        matmul_rates,
    )
    from omnireid.inference.runtime import (
        BACKEND_PRECISION,
        PRECISIONS,
        available_backends,
        stream_count,
    )
    from omnireid.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else available_backends()
    unknown = [b for b in backends if b not in available_backends()]
    if unknown or not backends:
        raise CLIError(f"--backends {args.backends!r}: {', '.join(unknown) or 'none'} not available here; "
                       f"available: {', '.join(available_backends())}")
    fixed = 0  # --streams auto
    if args.streams != "auto":
        fixed = int(args.streams) if args.streams.isdigit() else 0
        if fixed < 1:
            raise CLIError(f"--streams {args.streams!r}: give auto or a positive integer")
    model = create_model(args.model, weights=args.weights).eval()
    batches = args.batch_sizes
    size = args.input
    allocator = os.environ.get("LD_PRELOAD", "") or "default (glibc malloc)"
    print(f"model {args.model}, input {size[0]}x{size[1]}, threads {torch.get_num_threads()}, "
          f"allocator {allocator}")
    names = list(dict.fromkeys(["eager", *backends]))
    threads = torch.get_num_threads()
    per_batch = {b: fixed or stream_count(threads, b) for b in batches}
    rows, runners = [], {}
    for count in sorted(set(per_batch.values())):  # one set of runners per stream count
        runners = build_runners(model, names, size, streams=count)
        rows += bench_backends(model, batch_sizes=[b for b in batches if per_batch[b] == count],
                               size=size, rounds=args.rounds, warmup=3, runners=runners)
    order = {b: i for i, b in enumerate(batches)}
    rows.sort(key=lambda r: order[r.batch])
    ceiling = matmul_rates(args.ceiling_size)
    for r in rows:
        r.ceiling_share = ceiling_share(r, ceiling)
    print_table(["backend", "batch", "streams", "images/s", "vs eager", "GMAC/s", "of ceiling",
                 "max |diff|"],
                [[r.backend, r.batch, r.streams, f"{r.images_per_s:.1f}", f"{r.speedup:.2f}x",
                  f"{r.gmacs_per_s:.1f}",
                  "-" if r.ceiling_share is None else f"{100 * r.ceiling_share:.0f}% {r.precision}",
                  f"{r.max_abs_diff:.1e}"] for r in rows])
    print("matrix-product ceilings (same run): " + ", ".join(
        f"{k} {v:.1f} GMAC/s" for k, v in ceiling.items())
          + f" ({args.ceiling_size}^3)"
          + "; each the faster of PyTorch's and ONNX Runtime's product where both were timed")
    gates = {}
    for name in names:
        if BACKEND_PRECISION.get(name, "fp32") != "fp32":
            gates[name] = gate_runner(model, runners[name], BACKEND_PRECISION[name], size)
            print(f"accuracy gate {name}: {'passed' if gates[name].passed else 'FAILED'}: "
                  f"{gates[name].reason}")
    passed = {k: g.passed for k, g in gates.items()}
    auto = {b: {p: auto_choice(rows, b, p, passed) for p in PRECISIONS} for b in batches}
    for b in batches:
        print(f"auto at batch {b}: " + ", ".join(f"{p} -> {auto[b][p]}" for p in PRECISIONS))
    if args.json_path:
        write_json(args.json_path, {"model": args.model, "input": f"{size[0]}x{size[1]}", "allocator": allocator,
                                    "threads": torch.get_num_threads(), "matmul_gmacs_per_s": ceiling,
                                    "rows": [asdict(r) for r in rows],
                                    "gates": {k: g.to_dict() for k, g in gates.items()}, "auto": auto})
        print(f"wrote {args.json_path}")
    return 0
