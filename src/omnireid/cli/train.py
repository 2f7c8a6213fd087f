"""`omnireid train`: train from a YAML recipe (also under ``torchrun -m omnireid train``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from omnireid.cli import CLIError
from omnireid.cli.allocator import prepare_allocator
from omnireid.cli.util import print_table, recipe_overrides


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train a model from a YAML recipe",
        description="Train a model from a YAML recipe: a file, or the name of a packaged "
                    "recipe (`omnireid recipes` lists them). Each epoch prints one line "
                    "(loss, accuracy, learning rate, images/s, time, ETA, and the evaluation when "
                    "there is one); on a terminal a progress bar shows the epoch under way; in a "
                    "log, --set train.print_freq=N adds a line every N batches with an ETA. "
                    "Multi-process: torchrun --nproc_per_node=N -m omnireid train -c recipe.yaml")
    p.add_argument("-c", "--config", help="YAML recipe file or packaged recipe name, e.g. demo "
                   "(default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set optim.lr=0.01 (repeatable)")
    p.add_argument("-o", "--output", help="output folder (same as --set train.output_dir=...)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from a checkpoint file or run folder (default: the output folder); "
                        "changed settings are checked against the checkpoint first")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of a previous run in the output folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.add_argument("--print-config", action="store_true", help="print the resolved recipe and exit")
    p.set_defaults(func=run)


def print_results(final: dict) -> None:
    rows = [[name, f"{100 * m['rank1']:.1f}", f"{100 * m.get('rank5', float('nan')):.1f}",
             f"{100 * m['mAP']:.1f}"] for name, m in final.items()]
    if rows:
        print_table(["target", "rank-1 %", "rank-5 %", "mAP %"], rows)


def format_duration(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``4000`` -> ``1h06m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def epoch_line(record: dict[str, Any]) -> str:
    """One line per epoch: number, loss, accuracy, lr, speed, time (training + evaluation), ETA
    and the evaluation results."""
    width = len(str(record["max_epoch"]))
    parts = [
        f"epoch {record['epoch'] + 1:>{width}}/{record['max_epoch']}",
        f"loss {record['loss']:.4f}",
        f"acc {100 * record['acc']:5.1f}%",
        f"lr {record['lr']:.2e}",
        f"{record['images_per_s']:.0f} img/s",
        f"train {format_duration(record['epoch_seconds'])}",
    ]
    if record.get("eval_seconds"):
        parts.append(f"eval {format_duration(record['eval_seconds'])}")
    parts.append(f"ETA {format_duration(record['eta_s'])}")
    if record.get("skipped_images"):
        parts.append(f"{record['skipped_images']} unreadable image(s) skipped")
    line = "  ".join(parts)
    for name, m in (record.get("eval") or {}).items():
        line += f"  | {name} R1 {100 * m['rank1']:.1f}% mAP {100 * m['mAP']:.1f}%"
    return line


def batch_line(record: dict[str, Any]) -> str:
    """A line every ``train.print_freq`` batches (when the output is not a terminal)."""
    width = len(str(record["max_epoch"]))
    return "  ".join([
        f"epoch {record['epoch'] + 1:>{width}}/{record['max_epoch']}",
        f"batch {record['step']:>{len(str(record['steps']))}}/{record['steps']}",
        f"loss {record['loss']:.4f}",
        f"acc {100 * record['acc']:5.1f}%",
        f"lr {record['lr']:.2e}",
        f"{record['images_per_s']:.0f} img/s",
        f"epoch ETA {format_duration(record['epoch_eta_s'])}",
        f"ETA {format_duration(record['eta_s'])}",
    ])


def print_start(info: dict[str, Any]) -> None:
    """What is about to happen, in one or two lines."""
    targets = ", ".join(info["targets"]) or "nothing (train.eval_freq=-1)"
    print(f"training {info['model']} on {'+'.join(info['sources'])} ({info['train_images']} images, "
          f"{info['num_classes']} identities) for {info['max_epoch']} epochs; evaluating on {targets}; "
          f"outputs in {info['output_dir']}", flush=True)
    if info["resumed_from"] is not None:
        from omnireid.engine.checkpoint import describe_changes

        changed = f"; applying {describe_changes(info['changes'])}" if info["changes"] else ""
        print(f"resuming from {info['resumed_from']} at epoch {info['start_epoch'] + 1}{changed}", flush=True)


def run(args: argparse.Namespace) -> int:
    if not args.print_config:
        prepare_allocator()
    from omnireid.config import load_config
    from omnireid.engine.fit import fit
    from omnireid.progress import on_terminal  # imports tqdm, which `omnireid --help` need not

    overrides = recipe_overrides(args)
    cfg = load_config(args.config, overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    if args.resume and args.overwrite:
        raise CLIError("--resume and --overwrite exclude each other: resume a run, or replace it")
    resume = None
    if args.resume:
        resume = cfg.train.output_dir if args.resume == "auto" else args.resume
    main_rank = int(os.environ.get("RANK", "0")) == 0

    def on_epoch(record: dict[str, Any]) -> None:
        if not args.quiet:
            print(epoch_line(record), flush=True)

    def on_batch(record: dict[str, Any]) -> None:
        print(batch_line(record), flush=True)

    # on a terminal the progress bar shows the epoch under way; in a log, lines every N batches
    periodic = not args.quiet and not on_terminal() and cfg.train.print_freq > 0
    result = fit(cfg, resume=resume, overwrite=args.overwrite, on_epoch=on_epoch,
                 on_start=None if args.quiet else print_start, on_batch=on_batch if periodic else None)
    if main_rank:
        print_results(result.final)
        if result.skipped_images:
            print(f"{len(result.skipped_images)} unreadable image(s) were skipped: "
                  f"{result.output_dir / 'skipped_images.tsv'}")
        print(f"trained {result.epochs} epochs in {result.seconds:.0f} s; outputs in {result.output_dir}")
    return 0
