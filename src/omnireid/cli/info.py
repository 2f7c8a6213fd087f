"""`omnireid info NAME`: one model in detail."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnireid.cli.util import non_negative_int, size_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("info", help="show one model's architecture, size and cost",
                              description="Show a model's IN placement, parameters and mult-adds; "
                                          "with --weights, also load and check a checkpoint.")
    p.add_argument("name", help="model name (see `omnireid models`) or an arch spec JSON file")
    p.add_argument("--input", type=size_arg, default=None,
                   help="input size HxW (default: the input size of known --weights, else 256x128)")
    p.add_argument("--num-classes", type=non_negative_int, default=0, help="classifier size to include")
    p.add_argument("--weights", help="checkpoint to load and report on")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.models import OSNet, create_model, model_complexity
    from omnireid.models.weights import load_weights, preprocessing_of

    if args.name.endswith(".json") or Path(args.name).is_file():
        model = create_model("osnet", num_classes=args.num_classes, arch=args.name)
    else:
        model = create_model(args.name, num_classes=args.num_classes)
    report = load_weights(model, args.weights) if args.weights else None
    size = args.input or preprocessing_of(model).input_size
    c = model_complexity(model, size)
    info = {
        "name": args.name,
        "params": c.params,
        "params_no_classifier": c.params_no_classifier,
        "mult_adds": c.mult_adds,
        "input": list(size),
        "feature_dim": getattr(model, "feature_dim", None),
    }
    if isinstance(model, OSNet):
        info["arch"] = model.arch.to_dict()
    if report is not None:
        info["weights"] = {"path": report.source, "layout": report.layout,
                           "sha256_verified": report.sha256_verified,
                           "dropped_classifier": report.dropped_classifier,
                           "known": f"{report.known.model}/{report.known.tag}" if report.known else None}
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{args.name}")
    print(f"  parameters            {c.params:,} ({c.params_no_classifier:,} without classifier)")
    print(f"  mult-adds             {c.mult_adds:,} per image at {size[0]}x{size[1]}")
    print(f"  embedding dimension   {info['feature_dim']}")
    if isinstance(model, OSNet):
        print("  instance norm placement:")
        for line in model.arch.table().splitlines():
            print("    " + line)
    if report is not None:
        print(f"  weights               {report.source} (layout {report.layout}"
              f"{', sha256 verified' if report.sha256_verified else ''})")
        if report.known is not None:
            pre = report.known.preprocessing
            print(f"  known checkpoint      {report.known.model}/{report.known.tag}: input "
                  f"{pre.input_size[0]}x{pre.input_size[1]}, mean {pre.mean}, std {pre.std}")
    return 0
