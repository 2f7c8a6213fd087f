"""`omnireid demo`: train a plain OSNet and an OSNet-AIN with the same recipe on one synthetic
domain, evaluate both on it and on unseen domains that differ by camera style only, by population
only and by both, print the results side by side and write a report folder."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from omnireid.cli.allocator import prepare_allocator
from omnireid.cli.train import epoch_line
from omnireid.cli.util import non_negative_int, positive_int, print_table
from omnireid.errors import ConfigError, UsageError
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
                    "curves.png, ranked-list pictures, weights). With two CPUs or more the models train "
                    "at the same time, one process each (--jobs); an interrupted demo continues where it "
                    "stopped when run again.")
    p.add_argument("-o", "--output", default=None, help="report folder (default runs/demo)")
    p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the recipe's)")
    p.add_argument("--models", default=",".join(DEMO_MODELS),
                   help=f"comma-separated models to train side by side (default {','.join(DEMO_MODELS)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value for every model, e.g. --set train.seed=2")
    p.add_argument("--jobs", type=non_negative_int, default=0,
                   help="models trained at once, each in its own process (default 0: one per model, "
                        "up to the CPU count; 1: one after the other in this process)")
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


def demo_jobs(requested: int, models: int, cpus: int) -> int:
    """How many models train at once: ``requested`` when above 0, else one process per model up to
    the CPU count (a single CPU trains them one after the other)."""
    if requested > 0:
        return min(requested, models)
    return max(1, min(models, cpus))


def demo_threads(jobs: int, cpus: int, loader_workers: int) -> int:
    """Torch threads per training process: the process's share of the CPUs less its loader workers,
    at least one. On 2 CPUs this is one thread whether the two models train side by side or one
    after the other, so both ways give the same numbers."""
    return max(1, cpus // jobs - loader_workers)


def unfinished_run(folder: Path) -> bool:
    """Whether ``folder`` holds a training run that was interrupted: a checkpoint to continue
    from and no final weights."""
    from omnireid.engine.checkpoint import LAST

    return (folder / LAST).is_file() and not (folder / "model.pth").is_file()


def train_one(base: dict[str, Any], overrides: list[str], overwrite: bool, prefix: str) -> dict[str, Any]:
    """Train and evaluate one model of the demo and return its part of ``metrics.json``: its entry
    under ``models`` and, for every target, what differs and the chance rank-1. Runs in the
    ``omnireid demo`` process or in one of its worker processes."""
    from omnireid.config import load_config
    from omnireid.engine.fit import fit

    cfg = load_config(None, overrides, base=base, base_source="the demo recipe")
    folder = Path(cfg.train.output_dir)
    resume = None
    if not overwrite and unfinished_run(folder):
        resume = folder
        print(f"{prefix}continuing the interrupted run in {folder}", flush=True)
    try:
        result = fit(cfg, resume=resume, overwrite=overwrite,
                     on_epoch=lambda r: print(f"{prefix}{epoch_line(r)}", flush=True))
    except ConfigError as exc:
        if resume is None:
            raise
        raise UsageError(f"{folder} holds an interrupted run that is not this demo's ({exc}); replace it "
                         f"with --overwrite or write to another folder (-o)") from None
    targets = {target: {"shift": _shift_label(cfg.data.sources, target),
                        "chance_rank1": chance_rank1(ev.query, ev.gallery)}
               for target, ev in result.evaluations.items()}
    model_out = result.output_dir
    entry = {
        "results": result.final,
        "train_seconds": result.seconds,
        "threads": cfg.train.num_threads,
        "history": [{k: r[k] for k in ("epoch", "loss", "acc", "lr", "elapsed_s") if k in r}
                    for r in result.history],
        "files": {"curves": str(model_out / "curves.png"), "ranked_lists": _ranked_pictures(result, cfg, model_out),
                  "weights": str(model_out / "model.pth"), "config": str(model_out / "config.yaml")},
    }
    return {"targets": targets, "entry": entry}


def run(args: argparse.Namespace) -> int:
    prepare_allocator(tcmalloc=not args.no_tcmalloc)
    from omnireid.config import load_config
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise UsageError("--models: give at least one model name")
    if len(set(models)) != len(models):
        raise UsageError(f"--models: each model once, got {args.models}")
    base = demo_recipe()
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.max_epoch={args.epochs}")
    cpus = os.cpu_count() or 1
    jobs = demo_jobs(args.jobs, len(models), cpus)
    out = Path(args.output or base["train"]["output_dir"])
    # validate every model's config (and the overrides) before generating data or starting workers
    cfgs = {m: load_config(None, [*overrides, f"model.name={m}", f"train.output_dir={out / m}"], base=base,
                           base_source="the demo recipe")
            for m in models}
    first = cfgs[models[0]]
    if not any(o.startswith("train.num_threads=") for o in overrides):
        # the CPUs shared among the models training at once, a core per loader worker kept aside
        overrides.append(f"train.num_threads={demo_threads(jobs, cpus, first.data.num_workers)}")
    if jobs > 1:
        # one progress bar per process would garble the terminal: the epoch lines say enough
        overrides.append("train.progress=false")
    per_model = {m: [*overrides, f"model.name={m}", f"train.output_dir={out / m}"] for m in models}
    threads = load_config(None, per_model[models[0]], base=base, base_source="the demo recipe").train.num_threads
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
    generated = time.perf_counter() - start
    earlier_report = (out / "metrics.json").is_file()

    def overwrite_for(model: str) -> bool:
        # an earlier demo's finished runs are replaced; an interrupted one is continued
        folder = out / model
        return args.overwrite or (earlier_report and (folder / "config.yaml").is_file()
                                  and not unfinished_run(folder))

    parts: dict[str, dict[str, Any]] = {}
    if jobs == 1:
        for i, name in enumerate(models):
            print(f"[{i + 1}/{len(models)}] {name}", flush=True)
            parts[name] = train_one(base, per_model[name], overwrite_for(name), "")
    else:
        from omnireid.engine.workers import training_pool

        print(f"{len(models)} models side by side in {jobs} processes, {threads} "
              f"thread{'s' if threads != 1 else ''} each (--jobs 1: one after the other)", flush=True)
        width = max(len(m) for m in models)
        with training_pool(jobs) as pool:
            futures = {name: pool.submit(train_one, base, per_model[name], overwrite_for(name),
                                         f"{name:<{width}}  ")
                       for name in models}
            for name in models:
                parts[name] = futures[name].result()  # a failed model stops the demo with its error
    report: dict[str, Any] = {"trained_on": first.data.sources, "epochs": first.train.max_epoch,
                              "input_size": [first.data.height, first.data.width], "targets": {}, "models": {},
                              "jobs": jobs}
    for name in models:
        for target, info in parts[name]["targets"].items():
            report["targets"].setdefault(target, info)
        report["models"][name] = parts[name]["entry"]
    report["seconds"] = time.perf_counter() - start
    report["data_seconds"] = generated
    write_json(out / "metrics.json", report)
    print()
    print_side_by_side(report)
    print(f"\ntrained and evaluated {len(models)} models in {report['seconds']:.0f} s, of which "
          f"{generated:.0f} s reading or generating the data (rank-1 and mAP in %; 'chance' is a "
          f"random ranking)")
    print(f"report folder: {out.resolve()}")
    return 0
