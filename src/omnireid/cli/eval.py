"""`omnireid eval`: evaluate a model on one or more re-ID datasets.

Evaluates each target through :func:`omnireid.engine.evaluate.evaluate` (the one evaluation
path), prints one table per target (and a cross-domain table for several targets), writes
``results.json`` and an HTML report with ranked-list pictures of the worst queries.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnireid.cli import CLIError
from omnireid.cli.util import device_arg, non_negative_int, positive_int, size_arg
from omnireid.files import write_json

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model on re-ID datasets (CMC, mAP, mINP, report)",
        description=(
            "Extract features for the query and gallery of each target dataset, rank the gallery "
            "for every query and report rank-1/5/10/20, mAP and mINP. Several targets "
            "(--data a,b,c) give a cross-domain table."
        ),
    )
    p.add_argument("--model", required=True, help="model name (see `omnireid models`)")
    p.add_argument("--weights", help="checkpoint to load (omit to evaluate random weights); "
                                     "torchreid's model.pth.tar-N files are read too")
    p.add_argument("--data", required=True,
                   help="target dataset(s): names separated by commas (market1501,dukemtmcreid), or a "
                        "YAML list whose entries may carry their own root, display name and reader "
                        "options, e.g. '[{name: csv_manifest, root: b.csv, as: siteB}, market1501]'")
    p.add_argument("--root", help="data root of the datasets that name none")
    p.add_argument("--dist", choices=("euclidean", "cosine"), default="euclidean",
                   help="distance: squared euclidean (default) or cosine")
    p.add_argument("--normalize", action="store_true", help="L2-normalise features first")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--protocol", choices=("auto", "market", "cuhk03", "no_camera"), default="auto",
                   help="auto: market, or no_camera for data without camera ids")
    p.add_argument("--all-splits", action="store_true",
                   help="for datasets with random splits (VIPeR, GRID, CUHK01...): average over all")
    p.add_argument("--size", type=size_arg, default=None,
                   help="input HEIGHTxWIDTH (default: the input size of known --weights, else 256x128)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", type=device_arg, default=None,
                   help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-rank", type=positive_int, default=50)
    p.add_argument("--topk", type=positive_int, default=10, help="gallery images per ranked-list picture")
    p.add_argument("--num-vis", type=non_negative_int, default=20, help="worst queries drawn per target (0: none)")
    p.add_argument("--on-bad-image", choices=("error", "skip"), default="skip",
                   help="an unreadable image: skip it (default; listed and counted in results.json) or "
                        "stop with an error naming it")
    p.add_argument("--output", help="output folder (default runs/eval-<time>)")
    from omnireid.cli.extract import add_backend_options

    add_backend_options(p)
    p.set_defaults(func=run)


@dataclass
class Target:
    name: str
    summary: dict
    pictures: list
    seconds: float
    splits: int
    skipped: list


def run(args: argparse.Namespace) -> int:
    import torch

    from omnireid.cli.util import print_table
    from omnireid.data.spec import (
        check_spec,
        check_unique_labels,
        load_dataset_spec,
        parse_dataset_list,
    )
    from omnireid.engine.evaluate import TABLE_RANKS, check_evaluable, evaluate
    from omnireid.files import make_dirs
    from omnireid.models import create_model
    from omnireid.models.weights import load_weights
    from omnireid.viz import ReportSection, write_report

    specs = parse_dataset_list(args.data)
    for i, spec in enumerate(specs):
        check_spec(spec, f"--data[{i}]")
    check_unique_labels(specs, "--data")
    if args.weights and not Path(args.weights).is_file():
        raise CLIError(f"--weights {args.weights}: a folder, not a weights file" if Path(args.weights).is_dir()
                       else f"weights file not found: {args.weights}")
    # every target is read and checked before any model runs
    datasets = []
    for i, spec in enumerate(specs):
        dataset = load_dataset_spec(spec, root=args.root)
        check_evaluable(dataset, f"--data[{i}]")
        datasets.append((spec, dataset))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = make_dirs(args.output or f"runs/eval-{_dt.datetime.now():%Y%m%d-%H%M%S}")

    model = create_model(args.model)
    if args.weights:
        report = load_weights(model, args.weights)
        if report.epoch is not None:
            extra = ", ".join(f"{k} {v:.4g}" for k, v in report.meta.items() if k != "epoch")
            print(f"weights: {args.weights} (training checkpoint of epoch {report.epoch}"
                  f"{', ' + extra if extra else ''})")
    else:
        print("note: no --weights given, evaluating randomly initialised weights")
    model = _extractor(model.to(device).eval(), args, args.size, device)
    size = model.size

    targets = []
    for spec, dataset in datasets:
        name = dataset.name
        start = time.perf_counter()
        if not dataset.has_cameras and args.protocol in ("auto", "no_camera"):
            print(f"{name}: no camera ids in this data, so the same-camera filter cannot apply; "
                  "protocol no_camera (only the query image itself is left out of its gallery)")
        ev = evaluate(model, dataset, splits=_other_splits(spec, dataset, args),
                      dist_metric=args.dist, normalize_feature=args.normalize, rerank=args.rerank,
                      flip=args.flip, protocol=args.protocol, max_rank=args.max_rank,
                      keep_distmat=True, progress=True,
                      on_error="skip" if args.on_bad_image == "skip" else "raise")
        pictures = _pictures(ev, args, out_dir)
        summary = {k: v for k, v in ev.metrics.items() if k != "skipped_images"}
        splits, skipped = ev.num_splits, [(b.path, b.reason) for b in ev.skipped]
        targets.append(Target(name, summary, pictures, time.perf_counter() - start, splits, skipped))
        print(f"\n{name}" + (f" (mean of {splits} splits)" if splits > 1 else ""))
        if skipped:
            print(f"{len(skipped)} unreadable image(s) left out, e.g. {skipped[0][0]}: {skipped[0][1]}")
        print_table(
            ["metric", "value"],
            [[f"rank-{k}", f"{100 * summary[f'rank{k}']:.1f}%"] for k in TABLE_RANKS]
            + [["mAP", f"{100 * summary['mAP']:.1f}%"], ["mINP", f"{100 * summary['mINP']:.1f}%"]]
            + [["queries", f"{summary.get('num_valid_queries', '-')}"]],
        )
    if len(targets) > 1:
        print(f"\ncross-domain ({args.model}{' on ' + Path(args.weights).name if args.weights else ''})")
        print_table(
            ["target", *[f"R{k}" for k in TABLE_RANKS], "mAP", "mINP"],
            [[t.name, *[f"{100 * t.summary[f'rank{k}']:.1f}" for k in TABLE_RANKS],
              f"{100 * t.summary['mAP']:.1f}", f"{100 * t.summary['mINP']:.1f}"] for t in targets],
        )

    settings = {
        "model": args.model, "weights": args.weights, "dist": args.dist,
        "normalize": args.normalize, "rerank": args.rerank, "flip": args.flip,
        "protocol": args.protocol, "size": list(size), "device": device,
        "backend": model.backend, "precision": args.precision,
    }
    results = {
        "settings": settings,
        "targets": {t.name: {**t.summary, "seconds": round(t.seconds, 3), "num_splits": t.splits,
                             "skipped_images": [{"path": p, "reason": r} for p, r in t.skipped]}
                    for t in targets},
    }
    _write_json(results, out_dir / "results.json")
    sections = [
        ReportSection(
            t.name,
            t.summary,
            [(os.path.relpath(p.path, out_dir), f"query {p.query_index}: {Path(p.query_path).name}, "
              f"AP {p.ap:.3f}") for p in t.pictures],
        )
        for t in targets
    ]
    report = write_report(out_dir, f"Evaluation of {args.model}", sections, settings=settings)
    print(f"\nresults: {out_dir / 'results.json'}")
    print(f"report:  {report}")
    return 0


def _write_json(obj: object, path: Path) -> None:
    write_json(path, obj, default=_jsonable)


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _extractor(model, args, size, device):
    """The model wrapped in a FeatureExtractor on the requested backend (raw embeddings)."""
    from omnireid.inference import FeatureExtractor

    calibration = None
    if args.calibration:
        from omnireid.inference.gallery import find_images

        root, rel = find_images(args.calibration)
        calibration = [root / p for p in rel]
    fe = FeatureExtractor(model, device=device, batch_size=args.batch_size, size=size,
                          normalize=False, backend=args.backend, precision=args.precision,
                          calibration=calibration)
    if fe.selection is not None:
        print(f"backend auto: {fe.selection.reason}")
    return fe


def _other_splits(spec, dataset, args):
    """With --all-splits, the dataset's further random splits (read one at a time)."""
    from dataclasses import replace

    from omnireid.data.spec import load_dataset_spec

    num_splits = int(dataset.extra.get("num_splits", 1)) if args.all_splits else 1
    return (load_dataset_spec(replace(spec, options={**spec.options, "split_id": i}), root=args.root)
            for i in range(1, num_splits))


def _pictures(ev, args, out_dir):
    """Ranked-list pictures of the worst queries of the first split (``--num-vis``)."""
    from omnireid.viz import save_ranked_lists

    if args.num_vis <= 0:
        return []
    return save_ranked_lists(
        ev.distmat, [s.path for s in ev.query], [s.path for s in ev.gallery],
        np.array([s.pid for s in ev.query]), np.array([s.pid for s in ev.gallery]), ev.removed(),
        ev.result.query_ap, out_dir / "ranked" / _safe(ev.dataset), topk=args.topk,
        num_queries=args.num_vis,
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
