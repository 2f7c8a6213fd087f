"""`omnireid train`: train from a YAML recipe (also under ``torchrun -m omnireid train``)."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML recipe",
        description="Train a model from a YAML recipe: a file, or the name of a packaged "
                    "recipe (`omnireid recipes` lists them). Multi-process: "
                    "torchrun --nproc_per_node=N -m omnireid train -c recipe.yaml")
    p.add_argument("-c", "--config", help="YAML recipe file or packaged recipe name, e.g. demo "
                   "(default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set optim.lr=0.01 (repeatable)")
    p.add_argument("-o", "--output", help="output folder (same as --set train.output_dir=...)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from a checkpoint file or run folder (default: the output folder)")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.set_defaults(func=run)


def print_results(final: dict) -> None:
    from omnireid.cli.util import print_table

    rows = [[name, f"{100 * m['rank1']:.1f}", f"{100 * m.get('rank5', float('nan')):.1f}",
             f"{100 * m['mAP']:.1f}"] for name, m in final.items()]
    if rows:
        print_table(["target", "rank-1 %", "rank-5 %", "mAP %"], rows)


def run(args: argparse.Namespace) -> int:
    from omnireid.cli.demo import reexec_with_tcmalloc

    if not args.print_config:
        reexec_with_tcmalloc(True)
    from omnireid.config import ConfigError, load_config
    from omnireid.engine.fit import fit
    from omnireid.engine.train import NonFiniteLossError

    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"train.output_dir={args.output}")
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    resume = None
    if args.resume:
        resume = cfg.train.output_dir if args.resume == "auto" else args.resume
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        result = fit(cfg, resume=resume)
    except NonFiniteLossError as exc:
        if main_rank:
            print(f"omnireid train: stopped: {exc}")
        return 1
    if main_rank:
        print_results(result.final)
        print(f"trained {result.epochs} epochs in {result.seconds:.0f} s; outputs in {result.output_dir}")
    return 0
