"""`omnireid demo`: the main job on the embedded default."""

from __future__ import annotations

import argparse
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="run the main job on built-in data",
                              description="Build OSNet-AIN, embed a batch and show the result.")
    p.add_argument("--model", default="osnet_ain_x0_25", help="model to run (default osnet_ain_x0_25)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from omnireid.models import create_model, model_complexity

    model = create_model(args.model).eval()
    c = model_complexity(model)
    print(f"{args.model}: {c.params_no_classifier:,} parameters, {c.mult_adds:,} mult-adds per 256x128 image")
    if hasattr(model, "arch"):
        print(model.arch.table())
    x = torch.randn(8, 3, 256, 128, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with torch.no_grad():
        out = model(x)
    elapsed = time.perf_counter() - start
    print(f"embedded a batch of {x.shape[0]} images -> {tuple(out.embedding.shape)} "
          f"in {elapsed * 1000:.0f} ms")
    return 0
