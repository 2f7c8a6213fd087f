"""`omnireid reproduce`: the paper's findings on the built-in data, with verdicts on its claims."""

from __future__ import annotations

import argparse
import os
import time

from omnireid.cli.allocator import prepare_allocator
from omnireid.cli.util import print_table
from omnireid.errors import UsageError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reproduce", help="reproduce the paper's findings on the built-in domain-shift benchmark",
        description="Train OSNet, OSNet-IBN, OSNet-AIN and a searched child (searched in the same run, "
                    "or --arch) with one recipe, in the same-domain, single-source cross-domain "
                    "(style, population, both shifts) and leave-one-domain-out settings; then judge "
                    "the paper's claims from the numbers. Writes claims.json, report.html, report.md and "
                    "results.png. Running the same command again continues an interrupted run. "
                    "--quick: 1 seed, one leave-one-out fold and the short search nas_quick (within "
                    "15 minutes on 2 cores); default: 3 seeds, every fold that has a single-source "
                    "counterpart and the default search of `omnireid nas` (within 90 minutes).")
    p.add_argument("--quick", action="store_true", help="1 seed, one leave-one-out fold, the short search")
    p.add_argument("-o", "--output", help="report folder (default runs/reproduce or runs/reproduce_quick)")
    p.add_argument("--arch", help="child architecture (arch.json from `omnireid nas`) instead of searching")
    p.add_argument("--seeds", metavar="S1,S2,...", help="training seeds (default 0,1,2; --quick: 0)")
    p.add_argument("--folds", metavar="D1,D2,...",
                   help="leave-one-domain-out folds to run, by held-out domain (e.g. p4s4), or none (no "
                        "multi-source setting); default: every fold whose held-out domain is a "
                        "single-source target; --quick: the last")
    p.add_argument("--jobs", type=int, default=0,
                   help="training runs side by side, one process each (default: the CPU count)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the training recipe of every run, e.g. --set train.max_epoch=5")
    p.add_argument("--search-recipe", metavar="NAME|FILE",
                   help="the search's recipe, a packaged recipe or a YAML file (default: nas, the "
                        "default of `omnireid nas`; --quick: nas_quick, a shorter search)")
    p.add_argument("--nas-set", dest="nas_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the search recipe, e.g. --nas-set train.max_epoch=4")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a report folder that holds another run's results")
    p.set_defaults(func=run)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected integers separated by commas, e.g. 0,1,2") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: give distinct seeds, e.g. 0,1,2")
    return seeds


def _folds(text: str, folds: tuple) -> tuple[int, ...]:
    """Indices of the leave-one-out folds named by their held-out domain (``p4s4`` or
    ``synthetic_p4s4``); ``none``: no fold."""
    if text.strip().lower() == "none":
        return ()
    held = [h.removeprefix("synthetic_") for _, h in folds]
    names = [n.strip().removeprefix("synthetic_") for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in held]
    if not names or unknown:
        raise UsageError(f"--folds {text!r}: name held-out domains of the leave-one-out group "
                         f"({', '.join(held)})")
    return tuple(sorted({held.index(n) for n in names}))


def run(args: argparse.Namespace) -> int:
    prepare_allocator()
    from omnireid.config import load_config, load_nas_config
    from omnireid.engine.reproduce import REPRODUCE_RECIPE, ReproducePlan, quick_plan, reproduce
    from omnireid.models.arch import OSNetArch
    from omnireid.viz.reproduce_report import results_table

    if args.jobs < 0 or args.threads < 1:
        raise UsageError("--jobs must be >= 0 and --threads >= 1")
    # check the overrides before any work starts (errors name the option)
    load_config(None, args.overrides, base=REPRODUCE_RECIPE)
    plan = quick_plan() if args.quick else ReproducePlan()
    if args.search_recipe:
        if args.arch:
            raise UsageError("--search-recipe and --arch: give one (--arch skips the search)")
        plan.use_search_recipe(args.search_recipe)
    load_nas_config(plan.search_recipe, args.nas_overrides)
    if args.seeds:
        plan.seeds = _seeds(args.seeds)
    if args.folds:
        plan.folds = _folds(args.folds, plan.benchmark.leave_one_out)
    if args.arch:
        plan.arch = OSNetArch.load(args.arch)
    plan.recipe_overrides = tuple(args.overrides)
    plan.nas_overrides = (*plan.nas_overrides, *args.nas_overrides)
    folder = args.output or ("runs/reproduce_quick" if args.quick else "runs/reproduce")
    jobs = args.jobs or max(1, os.cpu_count() or 1)
    print(f"reproducing on {plan.benchmark.source} (+{len(plan.chosen_folds())} leave-one-out fold(s)), "
          f"seeds {', '.join(map(str, plan.seeds))}, {jobs} job(s) x {args.threads} thread(s); "
          f"report folder {folder}", flush=True)
    t0 = time.time()
    result = reproduce(plan, folder, jobs=jobs, threads=args.threads, overwrite=args.overwrite,
                       on_progress=lambda line: print(line, flush=True))
    settings = [s for s in ("same-domain", "style", "population", "both", "multi-source")
                if any(e["setting"] == s for e in result.summary)]
    print()
    print("rank-1 %, mean ± std over seeds")
    print_table(["model", *settings], results_table(result.summary, "rank1"))
    print()
    print_table(["claim", "verdict", "statement"],
                [[c["id"], c["verdict"], c["statement"]] for c in result.claims])
    print(f"\n{time.time() - t0:.0f} s wall in this session; "
          f"{result.info['cpu_seconds_all_cells']:.0f} s CPU over all training runs")
    print(f"claims: {result.folder / 'claims.json'}")
    print(f"report: {result.folder / 'report.html'}")
    return 0
