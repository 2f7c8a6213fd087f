"""`omnireid nas`: search where instance normalisation goes in OSNet, derive the child."""

from __future__ import annotations

import argparse
import json

from omnireid.cli.allocator import prepare_allocator
from omnireid.cli.util import print_table, recipe_overrides
from omnireid.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "nas", help="search the instance-norm placement of OSNet (the OSNet-AIN search)",
        description="Train the supernet whose OS blocks mix four instance-norm placements "
                    "(none, inside, after, both), anneal the Gumbel-softmax temperature, then "
                    "derive the child architecture. Default: the CPU recipe on the built-in "
                    "synthetic data (the packaged recipe `nas`, about 12 minutes on 2 idle cores); nas_quick "
                    "is a 2-minute search that does not converge; the packaged recipe nas_paper is the one "
                    "published with the paper's code. Writes arch.json (the child spec), "
                    "search.json, report.md and probabilities.png into the output folder; "
                    "running the same command again continues an interrupted search. "
                    "Retrain the child with `omnireid train --set model.arch=FOLDER/arch.json`.")
    p.add_argument("-c", "--config", help="YAML config file or packaged recipe name (e.g. nas); "
                   "default: built-in")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.max_epoch=4 --set nas.mode=single_path")
    p.add_argument("-o", "--output", help="output folder (overrides train.output_dir)")
    p.add_argument("--seeds", metavar="S1,S2,...",
                   help="run the search once per seed (in OUTPUT/seed_S) and report which blocks "
                        "the seeds agree on")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an output folder that holds another run's results")
    p.add_argument("--no-plot", action="store_true", help="do not draw probabilities.png")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected integers separated by commas, e.g. 1,2,3") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give distinct seeds, e.g. 1,2,3")
    return seeds


def run(args: argparse.Namespace) -> int:
    prepare_allocator()
    from omnireid.config import load_nas_config
    from omnireid.engine.nas import DECIDED_P, nas, nas_seeds, undecided_note

    overrides = recipe_overrides(args)
    config = load_nas_config(args.config, overrides)
    seeds = _parse_seeds(args.seeds) if args.seeds else None
    if seeds:
        both = nas_seeds(config, seeds, overwrite=args.overwrite, plot=not args.no_plot)
        ag = both.agreement
        print_table(["block", *(f"seed {s}" for s in ag.seeds), "agree"],
                    [[name, *(f"{r.convergence[b].chosen} ({r.convergence[b].probability:.2f})"
                              for r in both.results), "yes" if name in ag.agreeing_blocks else "no"]
                     for b, name in enumerate(ag.block_names)])
        print(f"{len(ag.agreeing_blocks)} of {len(ag.block_names)} blocks agree across seeds; "
              f"{ag.same_child} of {len(ag.seeds)} seeds derived the same child; "
              f"converged: {'yes' if ag.converged else 'no'}")
        print(f"report folder: {config.train.output_dir}")
        return 0
    result = nas(config, overwrite=args.overwrite, plot=not args.no_plot)
    print(f"searched {len(result.history)} epochs, {result.steps} steps ({result.mode}) on "
          f"{'+'.join(config.data.sources)}: {result.seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU, "
          f"{result.seconds_per_step * 1000:.0f} ms/step, peak RSS {result.peak_rss_mb:.0f} MiB")
    last = result.history[-1]
    print_table(
        ["block", "IN", *(f"p({c})" for c in result.candidates), "entropy (bits)"],
        [["conv1", "yes", *([""] * len(result.candidates)), ""]]
        + [[c.block, c.chosen, *(f"{p:.3f}" for p in probs), f"{c.entropy_bits:.2f}"]
           for c, probs in zip(result.convergence, last.probabilities)],
    )
    decided = sum(c.decided for c in result.convergence)
    print(f"{decided} of {len(result.convergence)} blocks decided (p(chosen) >= {DECIDED_P})")
    note = undecided_note(result.convergence)
    if note:
        print(note)
    print(json.dumps({"arch": result.arch.to_dict()}))
    print(f"child spec: {config.train.output_dir}/arch.json")
    print(f"report folder: {config.train.output_dir}")
    return 0

