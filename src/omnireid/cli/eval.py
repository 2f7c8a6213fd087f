"""`omnireid eval`: evaluate a model on one or more re-ID datasets.

Extracts query and gallery features (progress bar), computes distances, optionally re-ranks,
prints one table per target (and a cross-domain table for several targets), writes
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

TABLE_RANKS = (1, 5, 10, 20)


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
    p.add_argument("--size", type=size_arg, default=(256, 128), help="input HEIGHTxWIDTH (default 256x128)")
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
    from omnireid.engine.evaluate import check_evaluable
    from omnireid.files import make_dirs
    from omnireid.models import create_model
    from omnireid.models.weights import load_weights
    from omnireid.viz import ReportSection, write_report

    size = args.size
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
    model = _extractor(model.to(device).eval(), args, size, device)

    targets = []
    for spec, dataset in datasets:
        name = dataset.name
        start = time.perf_counter()
        summary, pictures, splits, skipped = _evaluate_target(model, spec, dataset, args, size, device, out_dir)
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


def _evaluate_target(model, spec, dataset, args, size, device, out_dir):
    from dataclasses import replace

    from omnireid.data.spec import load_dataset_spec

    name = dataset.name
    skipped: list = []
    num_splits = int(dataset.extra.get("num_splits", 1)) if args.all_splits else 1
    if num_splits > 1:
        from omnireid.evaluation import SplitResult

        results = [_evaluate_split(model, dataset, args, size, device, out_dir, name, True, skipped)]
        for split_id in range(1, num_splits):
            split = load_dataset_spec(replace(spec, options={**spec.options, "split_id": split_id}), root=args.root)
            results.append(_evaluate_split(model, split, args, size, device, out_dir, name, False, skipped))
        ranks = [r[0] for r in results]
        length = min(len(r.cmc) for r in ranks)
        averaged = SplitResult(
            cmc=np.mean([r.cmc[:length] for r in ranks], axis=0),
            mAP=float(np.mean([r.mAP for r in ranks])),
            mINP=float(np.mean([r.mINP for r in ranks])),
            splits=ranks,
        )
        return averaged.summary(TABLE_RANKS), results[0][1], num_splits, skipped
    result, pictures = _evaluate_split(model, dataset, args, size, device, out_dir, name, True, skipped)
    return result.summary(TABLE_RANKS), pictures, 1, skipped


def _evaluate_split(model, dataset, args, size, device, out_dir, name, draw, skipped):
    from omnireid.engine.evaluate import check_evaluable
    from omnireid.evaluation import evaluate_rank
    from omnireid.evaluation.distances import compute_distance_matrix, l2_normalize
    from omnireid.evaluation.rank import removed_gallery
    from omnireid.evaluation.rerank import re_ranking_features
    from omnireid.viz import save_ranked_lists

    check_evaluable(dataset, "--data")
    bad: list = []
    qf, q_keep = embed(model, [s.path for s in dataset.query], size, args.batch_size, args.flip,
                       f"{name} query", args.on_bad_image, bad)
    gf, g_keep = embed(model, [s.path for s in dataset.gallery], size, args.batch_size, args.flip,
                       f"{name} gallery", args.on_bad_image, bad)
    query = [dataset.query[i] for i in q_keep]
    gallery = [dataset.gallery[i] for i in g_keep]
    skipped.extend(b for b in bad if b not in skipped)
    if not query or not gallery:
        raise CLIError(f"{name}: after leaving out {len(bad)} unreadable image(s), {len(query)} query and "
                       f"{len(gallery)} gallery images are left: nothing to evaluate")
    q_paths = [s.path for s in query]
    g_paths = [s.path for s in gallery]
    q_pids = np.array([s.pid for s in query])
    g_pids = np.array([s.pid for s in gallery])
    q_cams = np.array([s.camid for s in query])
    g_cams = np.array([s.camid for s in gallery])
    if args.normalize:
        qf, gf = l2_normalize(qf), l2_normalize(gf)
    if args.rerank:
        distmat = re_ranking_features(qf, gf, args.dist)
    else:
        distmat = compute_distance_matrix(qf, gf, args.dist)

    protocol = args.protocol
    if protocol == "auto":
        protocol = "market" if dataset.has_cameras else "no_camera"
    if not dataset.has_cameras:
        if protocol in ("market", "cuhk03"):
            raise CLIError(f"dataset {name!r} has no camera ids: the {protocol} protocol's "
                           "same-camera filter cannot apply; use --protocol no_camera")
        print(f"{name}: no camera ids in this data, so the same-camera filter cannot apply; "
              "protocol no_camera (only the query image itself is left out of its gallery)")
    qgi = None
    if protocol == "no_camera":
        where = {p: i for i, p in enumerate(g_paths)}
        qgi = np.array([where.get(p, -1) for p in q_paths])
    result = evaluate_rank(
        distmat, q_pids, g_pids, q_cams, g_cams, args.max_rank,
        protocol=protocol, query_gallery_index=qgi,
    )
    pictures = []
    if draw and args.num_vis > 0:
        removed = [
            removed_gallery(protocol, i, q_pids[i], q_cams[i], g_pids, g_cams,
                            qgi if qgi is not None else np.full(len(q_pids), -1))
            for i in range(len(q_pids))
        ]
        pictures = save_ranked_lists(
            distmat, q_paths, g_paths, q_pids, g_pids, removed, result.query_ap,
            out_dir / "ranked" / _safe(name), topk=args.topk, num_queries=args.num_vis,
        )
    return result, pictures


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def embed(extractor, paths, size, batch_size, flip, desc, on_bad_image="error",
          bad: list | None = None) -> tuple[np.ndarray, list[int]]:
    """(M, D) float32 features from ``extractor`` (a FeatureExtractor giving raw embeddings) of
    the readable images and their positions in ``paths``; with ``flip`` the mean of the image's
    and its mirror's. Unreadable images raise (``error``) or are left out and appended to
    ``bad`` as ``(path, reason)`` (``skip``)."""
    import torch

    from omnireid.errors import ImageError
    from omnireid.inference.preprocess import open_rgb, preprocess
    from omnireid.progress import progress_bar

    chunks, keep = [], []
    with torch.no_grad(), progress_bar(total=len(paths), unit="img", desc=desc) as bar:
        for start in range(0, len(paths), batch_size):
            images = []
            for i, p in enumerate(paths[start : start + batch_size], start):
                try:
                    images.append(preprocess(open_rgb(p), size))
                except (ImageError, FileNotFoundError) as exc:
                    if on_bad_image == "error":
                        raise
                    if bad is not None:
                        bad.append((str(p), getattr(exc, "reason", None) or str(exc)))
                    continue
                keep.append(i)
            bar.update(min(batch_size, len(paths) - start))
            if not images:
                continue
            batch = torch.stack(images)
            feats = extractor.embed_batch(batch)
            if flip:
                feats = (feats + extractor.embed_batch(batch.flip(3).contiguous())) / 2
            chunks.append(feats)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32), keep
    return np.concatenate(chunks).astype(np.float32), keep
