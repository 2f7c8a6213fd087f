"""`omnireid demo`: train a plain OSNet and an OSNet-AIN with the same recipe on one synthetic
domain, evaluate both on it and on unseen domains that differ by camera style only, by population
only and by both, print the results side by side and write a report folder."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from omnireid.cli.allocator import reexec_with_tcmalloc
from omnireid.cli.train import epoch_line
from omnireid.cli.util import positive_int, print_table
from omnireid.errors import UsageError
from omnireid.files import write_json


def demo_recipe() -> dict[str, Any]:
    """The packaged ``demo`` recipe (:mod:`omnireid.recipes`) as plain sections. It is also the
    recipe ``experiments/synthetic_calibration.py`` calibrates the domain-shift benchmark with
    (plain osnet_x0_25 only)."""
    from omnireid.config import read_recipe_file

    return read_recipe_file("demo")


DEMO_MODELS = ("osnet_x0_25", "osnet_ain_x0_25")
"""Trained side by side with the same recipe: without and with instance normalisation."""

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="train OSNet and OSNet-AIN on built-in synthetic data, test on unseen domains (a few minutes)",
        description="Train osnet_x0_25 and osnet_ain_x0_25 with the same recipe on the synthetic domain "
                    "p1s1 (generated on first use), evaluate both on it and on unseen domains that differ "
                    "from it by camera style only (p1s3), by population only (p2s1) and by both (p3s3), "
                    "print the results side by side and write a report folder (metrics.json; per model: "
                    "curves.png, ranked-list pictures, weights).")
    p.add_argument("-o", "--output", default=None, help="report folder (default runs/demo)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the recipe's)")
    p.add_argument("--models", default=",".join(DEMO_MODELS),
                   help=f"comma-separated models to train side by side (default {','.join(DEMO_MODELS)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value for every model, e.g. --set train.seed=2")
    p.add_argument("--no-tcmalloc", action="store_true", help="do not restart with the tcmalloc allocator")
    p.add_argument("--overwrite", action="store_true",
                   help="replace training runs in the report folder that are not an earlier demo's "
                        "(an earlier demo report is always replaced)")
    p.set_defaults(func=run)


def chance_rank1(query: list, gallery: list) -> float:
    """Expected rank-1 of a random ranking under the Market-1501 protocol: for each query, the
    share of true matches among the gallery images it is ranked against (same identity in the same
    camera left out), averaged over the queries that have a match."""
    import numpy as np

    g_pids = np.array([s.pid for s in gallery])
    g_cams = np.array([s.camid for s in gallery])
    shares = []
    for q in query:
        valid = ~((g_pids == q.pid) & (g_cams == q.camid))
        matches = int(((g_pids == q.pid) & valid).sum())
        if matches:
            shares.append(matches / int(valid.sum()))
    return float(np.mean(shares)) if shares else float("nan")


def _ranked_pictures(result, cfg, out: Path) -> dict[str, list[str]]:
    import numpy as np

    from omnireid.viz.ranked import save_ranked_lists

    pictures = {}
    for name, ev in result.evaluations.items():
        if ev.distmat is None or ev.result is None:
            continue
        saved = save_ranked_lists(ev.distmat, [s.path for s in ev.query], [s.path for s in ev.gallery],
                                  np.array([s.pid for s in ev.query]), np.array([s.pid for s in ev.gallery]),
                                  ev.removed(), ev.result.query_ap, out / "ranked" / name,
                                  topk=10, num_queries=5, size=(2 * cfg.data.height, 2 * cfg.data.width))
        pictures[name] = [str(p.path) for p in saved]
    return pictures


def _shift_label(source: list[str], target: str) -> str:
    from omnireid.data.synthetic_domains import SHIFT_DOMAINS, shift_kind

    names = [n.removeprefix("synthetic_") for n in [*source, target]]
    if len(source) != 1 or any(n not in SHIFT_DOMAINS for n in names):
        return "seen" if target in source else "unseen"
    kind = shift_kind(source[0], target)
    return "seen (trained on)" if kind == "none" else f"{kind} shift"


def print_side_by_side(report: dict) -> None:
    """The demo's table: one row per target, rank-1 and mAP of every model side by side."""
    models = list(report["models"])
    headers = ["target", "what differs", "chance r1 %"]
    for m in models:
        headers += [f"{m} r1 %", "mAP %"]
    rows = []
    for target, info in report["targets"].items():
        row = [target, info["shift"], f"{100 * info['chance_rank1']:.1f}"]
        for m in models:
            r = report["models"][m]["results"].get(target, {})
            row += [f"{100 * r.get('rank1', float('nan')):.1f}", f"{100 * r.get('mAP', float('nan')):.1f}"]
        rows.append(row)
    print_table(headers, rows)


def run(args: argparse.Namespace) -> int:
    reexec_with_tcmalloc(not args.no_tcmalloc)
    from omnireid.config import load_config
    from omnireid.engine.fit import fit
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models: give at least one model name")
    base = demo_recipe()
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.max_epoch={args.epochs}")
    if not any(o.startswith("train.num_threads=") for o in overrides):
        # one core per loader worker, the rest for the network: no oversubscription on small machines
        workers = int(base["data"]["num_workers"])
        overrides.append(f"train.num_threads={max(1, (os.cpu_count() or 1) - workers)}")
    out = Path(args.output or base["train"]["output_dir"])
    cfgs = {m: load_config(None, [*overrides, f"model.name={m}", f"train.output_dir={out / m}"], base=base,
                           base_source="the demo recipe")
            for m in models}
    first = cfgs[models[0]]
    print(f"training {', '.join(models)} with the same recipe on {'+'.join(first.data.sources)} "
          f"({first.train.max_epoch} epochs, {first.data.height}x{first.data.width}); evaluating on "
          f"{', '.join(first.data.targets)}", flush=True)
    start = time.perf_counter()
    from omnireid.data import load_dataset
    from omnireid.data.datasets.synthetic import is_synthetic

    for name in dict.fromkeys([*first.data.sources, *first.data.targets]):  # generated on first use
        options = dict(first.data.synthetic) if is_synthetic(name) else {}
        load_dataset(name, first.data.root, progress=is_synthetic(name) and first.train.progress,
                     **options)
    report: dict[str, Any] = {"trained_on": first.data.sources, "epochs": first.train.max_epoch,
                              "input_size": [first.data.height, first.data.width], "targets": {}, "models": {}}
    for i, (name, cfg) in enumerate(cfgs.items()):
        print(f"[{i + 1}/{len(cfgs)}] {name}", flush=True)
        model_dir = Path(cfg.train.output_dir)
        earlier_demo = (out / "metrics.json").is_file() and (model_dir / "config.yaml").is_file()
        result = fit(cfg, overwrite=args.overwrite or earlier_demo,
                     on_epoch=lambda r: print(epoch_line(r), flush=True))
        for target, ev in result.evaluations.items():
            if target not in report["targets"]:
                report["targets"][target] = {"shift": _shift_label(cfg.data.sources, target),
                                             "chance_rank1": chance_rank1(ev.query, ev.gallery)}
        model_out = result.output_dir
        report["models"][name] = {
            "results": result.final,
            "train_seconds": result.seconds,
            "history": [{k: r[k] for k in ("epoch", "loss", "acc", "lr", "elapsed_s") if k in r}
                        for r in result.history],
            "files": {"curves": str(model_out / "curves.png"), "ranked_lists": _ranked_pictures(result, cfg, model_out),
                      "weights": str(model_out / "model.pth"), "config": str(model_out / "config.yaml")},
        }
    report["seconds"] = time.perf_counter() - start
    write_json(out / "metrics.json", report)
    print()
    print_side_by_side(report)
    print(f"\ntrained and evaluated {len(models)} models in {report['seconds']:.0f} s "
          f"(rank-1 and mAP in %; 'chance' is a random ranking)")
    print(f"report folder: {out.resolve()}")
    return 0
