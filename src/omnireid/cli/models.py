"""`omnireid models`: the model table."""

from __future__ import annotations

import argparse
import json

from omnireid.cli.util import print_table, size_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="list the available models with size and cost",
                              description="List every registered model with its parameter count "
                                          "(without classifier) and multiply-adds per image.")
    p.add_argument("--input", type=size_arg, default=(256, 128), help="input size HxW for mult-adds (default 256x128)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.models import MODELS, create_model, model_complexity

    size = args.input
    rows = []
    for name in MODELS.names():
        if name == "osnet":  # the general builder; its named instances are listed
            continue
        c = model_complexity(create_model(name), size)
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()[0]
        rows.append({"name": name, "params": c.params_no_classifier, "mult_adds": c.mult_adds,
                     "description": doc})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(
            ["model", "params", "mult-adds", "description"],
            [[r["name"], f"{r['params']:,}", f"{r['mult_adds']:,}", r["description"]] for r in rows],
        )
        print(f"\nmult-adds per image at {size[0]}x{size[1]}; params without classifier. "
              "Custom IN placements: create_model('osnet', width=..., in_positions=[...]).")
    return 0
