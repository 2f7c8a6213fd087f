"""`omnireid nas`: search where instance normalisation goes in OSNet, derive the child."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "nas", help="search the instance-norm placement of OSNet (the OSNet-AIN search)",
        description="Train the supernet whose OS blocks mix four instance-norm placements "
                    "(none, inside, after, both), anneal the Gumbel-softmax temperature, then "
                    "derive the child architecture. Writes arch.json (the child spec), "
                    "search.json, report.md and probabilities.png into the output folder. "
                    "Retrain the child with `omnireid train --set model.arch=FOLDER/arch.json`.")
    p.add_argument("-c", "--config", help="YAML config file or packaged recipe name (e.g. nas); "
                   "default: built-in")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_epoch=4 --set nas.mode=single_path")
    p.add_argument("-o", "--output", help="output folder (overrides output_dir)")
    p.add_argument("--no-plot", action="store_true", help="do not draw probabilities.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.cli.util import print_table
    from omnireid.engine.search import load_search_config, save_search, search

    config = load_search_config(args.config, args.overrides)
    if args.output:
        config.train.output_dir = args.output
    if args.quiet:
        config.train.progress = False
    result = search(config)
    artifacts = save_search(result, config.train.output_dir, plot=not args.no_plot)
    last = result.history[-1]
    print(f"searched {len(result.history)} epochs ({result.mode}) on "
          f"{'+'.join(config.data.sources)}: {result.seconds:.1f} s, "
          f"{result.seconds_per_step * 1000:.0f} ms/step, peak RSS {result.peak_rss_mb:.0f} MiB")
    print_table(
        ["block", "IN", *(f"p({c})" for c in result.candidates)],
        [["conv1", "yes", *([""] * len(result.candidates))]]
        + [[name, pos.value, *(f"{p:.3f}" for p in probs)]
           for name, pos, probs in zip(result.block_names, result.arch.blocks, last.probabilities)],
    )
    print(json.dumps({"arch": result.arch.to_dict()}))
    print(f"child spec: {artifacts.spec}")
    print(f"report folder: {artifacts.folder}")
    return 0
