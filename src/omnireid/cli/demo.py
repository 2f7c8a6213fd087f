"""`omnireid demo`: train OSNet x0.25 on one synthetic domain, evaluate on it and on an unseen
domain, print the results and write a report folder."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from omnireid.cli.util import positive_int
from omnireid.files import write_json


def demo_recipe() -> dict[str, Any]:
    """The packaged ``demo`` recipe as plain sections."""
    from omnireid.config import read_recipe_file

    return read_recipe_file("demo")


TCMALLOC_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
)


def find_tcmalloc() -> str | None:
    """Path of an installed tcmalloc library, if any."""
    return next((p for p in TCMALLOC_CANDIDATES if os.path.exists(p)), None)


def reexec_with_tcmalloc(enabled: bool) -> None:
    """Restart this command with tcmalloc preloaded (a faster allocator for eager PyTorch on the
    CPU) when one is installed and it is not loaded yet. Only for a command started from the
    shell (never inside another program, never under torchrun)."""
    if not enabled or "tcmalloc" in os.environ.get("LD_PRELOAD", "") or "WORLD_SIZE" in os.environ:
        return
    if os.environ.get("OMNIREID_NO_TCMALLOC") or "pytest" in sys.modules:
        return
    if Path(sys.argv[0]).name not in ("omnireid", "__main__.py"):
        return
    lib = find_tcmalloc()
    if lib is None:
        return
    env = dict(os.environ, LD_PRELOAD=":".join(filter(None, [lib, os.environ.get("LD_PRELOAD", "")])))
    print(f"(using the tcmalloc allocator {lib} for speed; OMNIREID_NO_TCMALLOC=1 turns this off)",
          flush=True)
    os.execve(sys.executable, [sys.executable, "-m", "omnireid", *sys.argv[1:]], env)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="train and evaluate on the built-in synthetic data (about 3 minutes)",
        description="Train osnet_x0_25 on the synthetic domain 'a' (generated on first use), evaluate "
                    "on it and on the unseen domain 'b', print a results table and write a report "
                    "folder (metrics.json, curves.png, ranked-list pictures).")
    p.add_argument("-o", "--output", default=None, help="report folder (default runs/demo)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 10)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set model.name=osnet_ain_x0_25")
    p.add_argument("--no-tcmalloc", action="store_true", help="do not restart with the tcmalloc allocator")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a training run in the report folder (an earlier demo report is "
                        "always replaced)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reexec_with_tcmalloc(not args.no_tcmalloc)
    import numpy as np

    from omnireid.cli.train import epoch_line, print_results
    from omnireid.config import load_config
    from omnireid.engine.fit import fit
    from omnireid.evaluation.rank import removed_gallery
    from omnireid.viz.ranked import save_ranked_lists

    recipe = demo_recipe()
    overrides = list(args.overrides)
    if args.output:
        overrides.append(f"train.output_dir={args.output}")
    if args.epochs is not None:
        overrides.append(f"train.max_epoch={args.epochs}")
    if not any(o.startswith("train.num_threads=") for o in overrides):
        # one core per loader worker, the rest for the network: no oversubscription on small machines
        workers = int(recipe["data"]["num_workers"])
        overrides.append(f"train.num_threads={max(1, (os.cpu_count() or 1) - workers)}")
    cfg = load_config(None, overrides, base=recipe, base_source="the demo recipe")
    print(f"training {cfg.model.name} on {'+'.join(cfg.data.sources)} for {cfg.train.max_epoch} epochs "
          f"({cfg.data.height}x{cfg.data.width}); evaluating on {', '.join(cfg.data.targets)}", flush=True)
    out = Path(cfg.train.output_dir)
    earlier_demo = (out / "metrics.json").is_file() and (out / "config.yaml").is_file()
    result = fit(cfg, overwrite=args.overwrite or earlier_demo, on_epoch=lambda r: print(epoch_line(r), flush=True))
    out = result.output_dir
    pictures = {}
    for name, ev in result.evaluations.items():
        if ev.distmat is None or ev.result is None:
            continue
        q_pids = np.array([s.pid for s in ev.query])
        g_pids = np.array([s.pid for s in ev.gallery])
        q_cams = np.array([s.camid for s in ev.query])
        g_cams = np.array([s.camid for s in ev.gallery])
        index = {s.path: i for i, s in enumerate(ev.gallery)}
        qgi = np.array([index.get(s.path, -1) for s in ev.query])
        removed = [removed_gallery(ev.result.protocol, i, q_pids[i], q_cams[i], g_pids, g_cams, qgi)
                   for i in range(len(ev.query))]
        saved = save_ranked_lists(ev.distmat, [s.path for s in ev.query], [s.path for s in ev.gallery],
                                  q_pids, g_pids, removed, ev.result.query_ap, out / "ranked" / name,
                                  topk=10, num_queries=5, size=(cfg.data.height, cfg.data.width))
        pictures[name] = [str(p.path) for p in saved]
    report = {
        "model": cfg.model.name,
        "trained_on": cfg.data.sources,
        "epochs": result.epochs,
        "train_seconds": result.seconds,
        "results": result.final,
        "history": [{k: r[k] for k in ("epoch", "loss", "acc", "lr", "elapsed_s") if k in r}
                    for r in result.history],
        "files": {"curves": str(out / "curves.png"), "ranked_lists": pictures,
                  "weights": str(out / "model.pth"), "config": str(out / "config.yaml")},
    }
    write_json(out / "metrics.json", report)
    print()
    print_results(result.final)
    print(f"\ntrained {result.epochs} epochs in {result.seconds:.0f} s")
    print(f"report folder: {out.resolve()}")
    return 0
