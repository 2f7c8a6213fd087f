"""Calibrate the difficulty of the synthetic domain-shift benchmark with a plain OSNet.

For every training setting -- one registered domain as a single source, or a leave-one-domain-out
group -- and every seed, train ``osnet_x0_25`` with the demo's recipe (``omnireid.cli.demo.
demo_recipe()``: same input size, epochs, optimiser, schedule, batch and augmentation) and evaluate
it on every registered domain-shift set. A colour-histogram baseline (no training) is measured on
every domain too. Only the plain network is used here: whether instance normalisation helps is
measured elsewhere, never tuned for.

Each (setting, seed) run is saved as its own JSON under ``--out-dir`` (default: a folder named by
the generator version and the epochs) and skipped when it is already there, so an interrupted
calibration resumes; a saved run made with other epochs, learning rate or precision stops the
script instead of being mixed in. ``--table`` aggregates whatever runs exist
into ``summary.json`` (mean and sample standard deviation over seeds; the fraction of the in-domain rank-1
kept on each unseen domain) and prints the tables.

Usage:
    PYTHONPATH=src python experiments/synthetic_calibration.py                       # everything
    PYTHONPATH=src python experiments/synthetic_calibration.py --settings p1s1 --seeds 1
    PYTHONPATH=src python experiments/synthetic_calibration.py --table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.data.synthetic import SHIFT_DEFAULTS  # noqa: E402
from omnireid.data.synthetic_domains import (  # noqa: E402
    LEAVE_ONE_OUT,
    SHIFT_DOMAINS,
    SHIFT_VERSION,
    SINGLE_SOURCE,
    shift_kind,
)
from omnireid.files import write_json  # noqa: E402

DOMAINS = list(SHIFT_DOMAINS)


def setting_sources(setting: str) -> list[str]:
    """``p1s1`` -> that domain; ``lodo-p2s2`` -> the leave-one-out group without ``p2s2``."""
    if setting.startswith("lodo-"):
        held = setting.removeprefix("lodo-")
        if held not in LEAVE_ONE_OUT:
            raise SystemExit(f"{held!r} is not in the leave-one-out group {LEAVE_ONE_OUT}")
        return [d for d in LEAVE_ONE_OUT if d != held]
    if setting not in SHIFT_DOMAINS:
        raise SystemExit(f"unknown setting {setting!r}: a domain ({DOMAINS}) or lodo-<domain>")
    return [setting]


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def machine() -> dict:
    import torch

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": name, "cpus": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def dataset_entry(domain: str, train_ids: int | None) -> str | dict:
    """The recipe's name for ``domain``: the registered set, or with ``train_ids`` training
    identities and the registered 600 test identities (other people than the registered test
    split, as many)."""
    if train_ids is None:
        return f"synthetic_{domain}"
    test_ids = int(SHIFT_DEFAULTS["num_test_ids"])
    return {"name": f"synthetic_{domain}", "num_ids": train_ids + test_ids, "num_test_ids": test_ids,
            "as": f"synthetic_{domain}"}


def train_and_evaluate(setting: str, seed: int, epochs: int | None, cache: str | None, workdir: Path,
                       amp: str | None = None, lr: float | None = None, train_ids: int | None = None) -> dict:
    from omnireid.cli.demo import demo_recipe
    from omnireid.config import load_config
    from omnireid.engine.fit import fit

    recipe = demo_recipe()
    recipe["model"]["name"] = "osnet_x0_25"
    recipe["data"].update(sources=[dataset_entry(d, train_ids) for d in setting_sources(setting)],
                          targets=[dataset_entry(d, train_ids) for d in DOMAINS], root=cache)
    recipe["train"].update(seed=seed, output_dir=str(workdir / f"{setting}_seed{seed}"), eval_freq=0,
                           progress=False, num_threads=max(1, (os.cpu_count() or 1) - recipe["data"]["num_workers"]))
    if epochs is not None:
        recipe["train"]["max_epoch"] = epochs
    if amp is not None:
        recipe["train"]["amp"] = amp
    if lr is not None:
        recipe["optim"]["lr"] = lr
    sources = setting_sources(setting)
    if len(sources) > 1 and train_ids is not None:
        raise SystemExit("--train-ids is for single-source settings only")
    if len(sources) > 1:
        # the same budget as a single-source run: each epoch as many steps as one source's epoch
        from omnireid.data import load_dataset

        sizes = [len(load_dataset(f"synthetic_{d}", cache).train) for d in sources]
        recipe["train"]["max_steps_per_epoch"] = -(-round(sum(sizes) / len(sizes)) // recipe["data"]["batch_size"])
    cfg = load_config(None, [], base=recipe)
    load0, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), cpu_seconds()
    result = fit(cfg)
    shutil.rmtree(cfg.train.output_dir, ignore_errors=True)
    return {
        "setting": setting, "sources": setting_sources(setting), "seed": seed, "model": cfg.model.name,
        "recipe": cfg.to_dict(),
        "results": {name.removeprefix("synthetic_"): {k: m[k] for k in ("rank1", "rank5", "mAP")}
                    for name, m in result.final.items()},
        "train_seconds": round(result.seconds, 1), "wall_seconds": round(time.perf_counter() - wall0, 1),
        "cpu_seconds": round(cpu_seconds() - cpu0, 1), "loadavg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
        **({"train_ids": train_ids} if train_ids is not None else {}),
        "final_train_loss": result.history[-1]["loss"], "final_train_acc": result.history[-1]["acc"],
        "machine": machine(),
    }


def histogram_features(paths: list[str], stripes: int = 6, bins=(8, 4, 4)) -> np.ndarray:
    """HSV histograms of horizontal stripes of the central half of the crop after grey-world
    colour correction, square-rooted (Hellinger): a hand-made baseline that needs no training.

    Returns:
        (N, stripes * prod(bins)) float32.
    """
    feats = []
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB").resize((32, 96), Image.BILINEAR), dtype=np.float32)
        rgb = rgb[:, 8:24]
        rgb = rgb / np.maximum(rgb.reshape(-1, 3).mean(0), 1.0) * 128.0
        hsv = np.asarray(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).convert("HSV"))
        parts = []
        for k in range(stripes):
            band = hsv[k * 96 // stripes:(k + 1) * 96 // stripes].reshape(-1, 3)
            h, _ = np.histogramdd(band, bins=bins, range=((0, 256), (0, 256), (0, 256)))
            parts.append(h.ravel() / max(h.sum(), 1))
        feats.append(np.sqrt(np.concatenate(parts)))
    return np.stack(feats).astype(np.float32)


def histogram_baseline(cache: str | None) -> dict:
    from omnireid.data import load_dataset
    from omnireid.evaluation import compute_distance_matrix, evaluate_rank

    out = {}
    for d in DOMAINS:
        ds = load_dataset(f"synthetic_{d}", cache)
        qf = histogram_features([s.path for s in ds.query])
        gf = histogram_features([s.path for s in ds.gallery])
        distmat = compute_distance_matrix(qf, gf, metric="euclidean")
        r = evaluate_rank(distmat, np.array([s.pid for s in ds.query]), np.array([s.pid for s in ds.gallery]),
                          np.array([s.camid for s in ds.query]), np.array([s.camid for s in ds.gallery]))
        out[d] = {"rank1": float(r.cmc[0]), "rank5": float(r.cmc[4]), "mAP": float(r.mAP)}
        print(f"  colour histogram on {d}: rank-1 {100 * out[d]['rank1']:.1f} mAP {100 * out[d]['mAP']:.1f}", flush=True)
    return out


def check_same_recipe(path: Path, wanted: dict) -> None:
    """A saved run is reused only when it was trained with the epochs, learning rate, precision and
    number of training identities asked for now; otherwise stop rather than mix two recipes in one
    table."""
    run = json.loads(path.read_text())
    recipe = run["recipe"]
    made = {"epochs": recipe["train"]["max_epoch"], "lr": recipe["optim"]["lr"], "amp": recipe["train"]["amp"],
            "train_ids": run.get("train_ids")}
    if made != wanted:
        raise SystemExit(f"{path}: this run was made with {made}, not {wanted}; give another --out-dir")


def summarize(out_dir: Path) -> dict:
    """Mean and std over seeds of every (setting, target), the fraction of in-domain rank-1 kept."""
    runs = [json.loads(p.read_text()) for p in sorted(out_dir.glob("run_*.json"))]
    by_setting: dict[str, list[dict]] = {}
    for r in runs:
        by_setting.setdefault(r["setting"], []).append(r)
    table: dict[str, dict] = {}
    for setting, rs in by_setting.items():
        rows = {}
        for target in DOMAINS:
            r1 = np.array([r["results"][target]["rank1"] for r in rs]) * 100
            mp = np.array([r["results"][target]["mAP"] for r in rs]) * 100
            ddof = 1 if len(rs) > 1 else 0  # sample standard deviation over seeds
            rows[target] = {"rank1_mean": float(r1.mean()), "rank1_std": float(r1.std(ddof=ddof)),
                            "mAP_mean": float(mp.mean()), "mAP_std": float(mp.std(ddof=ddof)),
                            "rank1_per_seed": [round(float(x), 2) for x in r1]}
        table[setting] = {"seeds": sorted(r["seed"] for r in rs), "targets": rows,
                          "wall_seconds": [r["wall_seconds"] for r in rs], "cpu_seconds": [r["cpu_seconds"] for r in rs]}
    # fraction kept: unseen rank-1 over the in-domain rank-1 of the same models (single source) or
    # over the held-out domain's own in-domain rank-1 (leave-one-out), both seed means
    kept: dict[str, dict[str, float]] = {}
    for setting, row in table.items():
        sources = setting_sources(setting)
        for target in DOMAINS:
            if target in sources:
                continue
            ref = sources[0] if len(sources) == 1 else target
            if ref in table and table[ref]["targets"][ref]["rank1_mean"] > 0:
                kept.setdefault(setting, {})[target] = (row["targets"][target]["rank1_mean"]
                                                        / table[ref]["targets"][ref]["rank1_mean"])
    summary = {"settings": table, "kept_fraction": kept, "decision_spread": decision_spread(runs)}
    hist = out_dir / "colour_histogram.json"
    if hist.is_file():
        summary["colour_histogram"] = json.loads(hist.read_text())["results"]
    return summary


def decision_spread(runs: list[dict]) -> dict | None:
    """Seed spread of the averages ``omnireid reproduce`` decides its claims on, for the runs
    trained on the single source: per kind of shift the mean rank-1 over that kind's targets (its
    ``style``/``population``/``both`` rows), and the cross-domain value, the mean of the three
    kinds (claims b-d). ``None`` with fewer than two seeds of the source."""
    source, kinds = SINGLE_SOURCE["source"], SINGLE_SOURCE["targets"]
    per_seed = {}
    for r in runs:
        if r["setting"] != source:
            continue
        means = {k: float(np.mean([100 * r["results"][t]["rank1"] for t in ts])) for k, ts in kinds.items()}
        means["cross-domain"] = float(np.mean([means[k] for k in kinds]))
        per_seed[r["seed"]] = means
    if len(per_seed) < 2:
        return None
    seeds = sorted(per_seed)
    out = {"source": source, "seeds": seeds}
    for name in (*kinds, "cross-domain"):
        values = np.array([per_seed[s][name] for s in seeds])
        out[name] = {"rank1_per_seed": [round(float(v), 2) for v in values],
                     "rank1_mean": float(values.mean()), "rank1_std": float(values.std(ddof=1))}
    return out


def print_tables(summary: dict) -> None:
    table, kept = summary["settings"], summary["kept_fraction"]
    order = [s for s in DOMAINS if s in table] + [s for s in table if s not in DOMAINS]
    for metric, name in (("rank1", "rank-1"), ("mAP", "mAP")):
        print(f"\n{name} % (mean ± std over seeds; in-domain in [brackets])")
        print("| trained on | seeds | " + " | ".join(DOMAINS) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in DOMAINS) + " |")
        for setting in order:
            row, sources = table[setting], setting_sources(setting)
            cells = []
            for t in DOMAINS:
                c = row["targets"][t]
                text = f"{c[metric + '_mean']:.1f} ± {c[metric + '_std']:.1f}"
                cells.append(f"[{text}]" if t in sources else text)
            label = setting if len(sources) == 1 else "+".join(sources)
            print(f"| {label} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
        if "colour_histogram" in summary:
            h = summary["colour_histogram"]
            print("| colour histogram (no training) | - | "
                  + " | ".join(f"{100 * h[t][metric]:.1f}" for t in DOMAINS) + " |")
    print("\nfraction of in-domain rank-1 kept on unseen domains (band: 0.15-0.60), with the shift kind")
    for setting, fractions in kept.items():
        src = setting_sources(setting)
        parts = [f"{t} {f:.2f} ({shift_kind(src[0], t) if len(src) == 1 else 'held out'})" for t, f in fractions.items()]
        print(f"  {setting}: " + ", ".join(parts))
    spread = summary.get("decision_spread")
    if spread:
        print(f"\nseed spread of the averages the claims are decided on ({spread['source']}, seeds "
              f"{', '.join(map(str, spread['seeds']))}; target: std <= 1.5 points)")
        for name, v in spread.items():
            if isinstance(v, dict):
                print(f"  {name}: {v['rank1_mean']:.1f} ± {v['rank1_std']:.2f} "
                      f"({', '.join(f'{x:.1f}' for x in v['rank1_per_seed'])})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=None,
                   help=f"training settings: domains ({' '.join(DOMAINS)}) and/or lodo-<domain> "
                        f"(default: source {SINGLE_SOURCE['source']}, every other domain in-domain, every lodo group)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epochs (exploration only)")
    p.add_argument("--amp", default=None, choices=["bf16", "none"],
                   help="override the demo's mixed precision (exploration only; give another --out-dir)")
    p.add_argument("--lr", type=float, default=None,
                   help="override the demo's learning rate (exploration only; give another --out-dir)")
    p.add_argument("--train-ids", type=int, default=None,
                   help="exploration only: draw every domain with this many training identities (registered: "
                        "400) and 600 test identities, single-source settings only (default --out-dir: "
                        "..._v<version>_<N>ids_<epochs>ep)")
    p.add_argument("--cache", default=None, help="synthetic cache folder (default $OMNIREID_CACHE)")
    p.add_argument("--out-dir", default=None,
                   help=f"where the runs go (default experiments/results/domain_shift_calibration_v{SHIFT_VERSION}_"
                        "<epochs>ep, the demo's epochs or --epochs)")
    p.add_argument("--no-histogram", action="store_true")
    p.add_argument("--table", action="store_true", help="only aggregate the runs already saved")
    args = p.parse_args()
    from omnireid.cli.demo import demo_recipe

    demo = demo_recipe()
    wanted = {"epochs": args.epochs or demo["train"]["max_epoch"], "lr": args.lr or demo["optim"]["lr"],
              "amp": args.amp or demo["train"]["amp"], "train_ids": args.train_ids}
    ids = "" if args.train_ids is None else f"_{args.train_ids}ids"
    out_dir = Path(args.out_dir or
                   f"experiments/results/domain_shift_calibration_v{SHIFT_VERSION}{ids}_{wanted['epochs']}ep")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.table:
        if args.train_ids is not None and not args.no_histogram:
            raise SystemExit("--train-ids: give --no-histogram as well (the baseline reads the registered sets)")
        if not args.no_histogram and not (out_dir / "colour_histogram.json").is_file():
            t0, c0 = time.perf_counter(), cpu_seconds()
            print("colour-histogram baseline", flush=True)
            res = histogram_baseline(args.cache)
            write_json(out_dir / "colour_histogram.json",
                       {"results": res, "wall_seconds": round(time.perf_counter() - t0, 1),
                        "cpu_seconds": round(cpu_seconds() - c0, 1), "machine": machine()}, indent=1)
        settings = args.settings or [*DOMAINS, *(f"lodo-{d}" for d in LEAVE_ONE_OUT)]
        with tempfile.TemporaryDirectory(prefix="calibration_runs_") as workdir:
            for seed in args.seeds:
                for setting in settings:
                    path = out_dir / f"run_{setting}_seed{seed}.json"
                    if path.is_file():
                        check_same_recipe(path, wanted)
                        continue
                    print(f"training osnet_x0_25 on {'+'.join(setting_sources(setting))}, seed {seed} "
                          f"(load {os.getloadavg()[0]:.1f})", flush=True)
                    run = train_and_evaluate(setting, seed, args.epochs, args.cache, Path(workdir), args.amp, args.lr,
                                             args.train_ids)
                    write_json(path, run, indent=1)
                    res = run["results"]
                    print(f"  {run['wall_seconds']:.0f} s wall, {run['cpu_seconds']:.0f} s CPU; rank-1 "
                          + ", ".join(f"{d} {100 * res[d]['rank1']:.1f}" for d in DOMAINS), flush=True)
    summary = summarize(out_dir)
    summary["command"] = " ".join(sys.argv)
    write_json(out_dir / "summary.json", summary, indent=1)
    print_tables(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
