"""`omnireid eval`: evaluate a model on one or more re-ID datasets.

Extracts query and gallery features (progress bar), computes distances, optionally re-ranks,
prints one table per target (and a cross-domain table for several targets), writes
``results.json`` and an HTML report with ranked-list pictures of the worst queries.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnireid.cli import CLIError

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
    p.add_argument("--weights", help="checkpoint to load (omit to evaluate random weights)")
    p.add_argument("--data", required=True, help="target dataset name(s), comma separated")
    p.add_argument("--root", help="data root holding the dataset folders")
    p.add_argument("--dist", choices=("euclidean", "cosine"), default="euclidean",
                   help="distance: squared euclidean (default) or cosine")
    p.add_argument("--normalize", action="store_true", help="L2-normalise features first")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--protocol", choices=("auto", "market", "cuhk03", "no_camera"), default="auto",
                   help="auto: market, or no_camera for data without camera ids")
    p.add_argument("--all-splits", action="store_true",
                   help="for datasets with random splits (VIPeR, GRID, CUHK01...): average over all")
    p.add_argument("--size", default="256x128", help="input HEIGHTxWIDTH (default 256x128)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-rank", type=int, default=50)
    p.add_argument("--topk", type=int, default=10, help="gallery images per ranked-list picture")
    p.add_argument("--num-vis", type=int, default=20, help="worst queries drawn per target (0: none)")
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


def run(args: argparse.Namespace) -> int:
    import torch

    from omnireid.cli.util import parse_size, print_table
    from omnireid.models import create_model
    from omnireid.viz import ReportSection, write_report

    size = parse_size(args.size)
    names = [n.strip() for n in args.data.split(",") if n.strip()]
    if not names:
        raise CLIError("--data names no dataset")
    if args.weights and not Path(args.weights).is_file():
        raise CLIError(f"weights file not found: {args.weights}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = Path(args.output or f"runs/eval-{_dt.datetime.now():%Y%m%d-%H%M%S}")
    out_dir.mkdir(parents=True, exist_ok=True)

    model = create_model(args.model, weights=args.weights).to(device).eval()
    if not args.weights:
        print("note: no --weights given, evaluating randomly initialised weights")
    from omnireid.data import load_dataset

    datasets = {name: load_dataset(name, args.root) for name in names}  # bad names fail first
    model = _extractor(model, args, size, device)

    targets = []
    for name in names:
        start = time.perf_counter()
        summary, pictures, splits = _evaluate_target(model, name, args, size, device, out_dir,
                                                     datasets[name])
        targets.append(Target(name, summary, pictures, time.perf_counter() - start, splits))
        print(f"\n{name}" + (f" (mean of {splits} splits)" if splits > 1 else ""))
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
        "targets": {t.name: {**t.summary, "seconds": round(t.seconds, 3), "num_splits": t.splits}
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
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=_jsonable))
    os.replace(tmp, path)


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


def _evaluate_target(model, name, args, size, device, out_dir, dataset):
    from omnireid.data import load_dataset

    num_splits = int(dataset.extra.get("num_splits", 1)) if args.all_splits else 1
    if num_splits > 1:
        from omnireid.evaluation import SplitResult

        results = [_evaluate_split(model, dataset, args, size, device, out_dir, name, draw=True)]
        for split_id in range(1, num_splits):
            split = load_dataset(name, args.root, split_id=split_id)
            results.append(_evaluate_split(model, split, args, size, device, out_dir, name, draw=False))
        ranks = [r[0] for r in results]
        length = min(len(r.cmc) for r in ranks)
        averaged = SplitResult(
            cmc=np.mean([r.cmc[:length] for r in ranks], axis=0),
            mAP=float(np.mean([r.mAP for r in ranks])),
            mINP=float(np.mean([r.mINP for r in ranks])),
            splits=ranks,
        )
        return averaged.summary(TABLE_RANKS), results[0][1], num_splits
    result, pictures = _evaluate_split(model, dataset, args, size, device, out_dir, name, draw=True)
    return result.summary(TABLE_RANKS), pictures, 1


def _evaluate_split(model, dataset, args, size, device, out_dir, name, draw):
    from omnireid.evaluation import evaluate_rank
    from omnireid.evaluation.distances import compute_distance_matrix, l2_normalize
    from omnireid.evaluation.rank import removed_gallery
    from omnireid.evaluation.rerank import re_ranking_features
    from omnireid.viz import save_ranked_lists

    if not dataset.query or not dataset.gallery:
        raise CLIError(f"dataset {name!r} has an empty query or gallery set")
    q_paths = [s.path for s in dataset.query]
    g_paths = [s.path for s in dataset.gallery]
    q_pids = np.array([s.pid for s in dataset.query])
    g_pids = np.array([s.pid for s in dataset.gallery])
    q_cams = np.array([s.camid for s in dataset.query])
    g_cams = np.array([s.camid for s in dataset.gallery])

    qf = embed(model, q_paths, size, args.batch_size, device, args.flip, f"{name} query")
    gf = embed(model, g_paths, size, args.batch_size, device, args.flip, f"{name} gallery")
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


def embed(extractor, paths, size, batch_size, device, flip, desc) -> np.ndarray:
    """(N, D) float32 features from ``extractor`` (a FeatureExtractor giving raw embeddings);
    with ``flip`` the mean of the image's and its mirror's."""
    import torch
    from tqdm.auto import tqdm

    from omnireid.inference.preprocess import open_rgb, preprocess

    chunks = []
    with torch.no_grad(), tqdm(total=len(paths), unit="img", desc=desc, leave=False) as bar:
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([preprocess(open_rgb(p), size) for p in paths[start : start + batch_size]])
            feats = extractor.embed_batch(batch)
            if flip:
                feats = (feats + extractor.embed_batch(batch.flip(3).contiguous())) / 2
            chunks.append(feats)
            bar.update(len(batch))
    return np.concatenate(chunks).astype(np.float32)
