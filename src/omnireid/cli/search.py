"""`omnireid search --gallery gallery.npz QUERY...`: nearest gallery images of query crops."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omnireid.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search", help="find the gallery images closest to query crops",
        description="Embeds the query images with the model recorded in the gallery file, "
                    "searches the gallery (cosine similarity) and prints the top matches; "
                    "writes a picture of the ranked lists, an HTML page and a JSON file to the "
                    "report folder.")
    p.add_argument("queries", nargs="+", help="query image files")
    p.add_argument("--gallery", required=True, help="gallery file from `omnireid extract`")
    p.add_argument("--top", type=int, default=10, help="matches per query (default 10)")
    p.add_argument("--index", default="exact",
                   help="exact (default), faiss-flat, faiss-ivf or faiss-hnsw")
    p.add_argument("--weights", help="checkpoint (default: the one recorded in the gallery)")
    p.add_argument("--backend", default="auto",
                   help="inference backend for the queries (default auto: the fastest path that "
                        "meets the gallery's precision; see `omnireid extract --help`)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"),
                   help="for --backend auto (default: the precision the gallery was made with)")
    p.add_argument("--report", default="search_report", help="report folder (default "
                                                               "./search_report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.cli.util import print_table
    from omnireid.inference import FeatureExtractor
    from omnireid.inference.gallery import Gallery
    from omnireid.inference.index import build_index
    from omnireid.inference.search_report import Match, draw_ranked_grid, write_html

    gallery = Gallery.load(args.gallery)
    meta = gallery.meta
    if "model" not in meta:
        raise CLIError(f"{args.gallery} records no model; re-create it with `omnireid extract`")
    weights = args.weights or meta.get("weights")
    precision = args.precision or meta.get("precision", "fp32")
    calibration = None
    if meta.get("calibration") and (precision == "int8" or args.backend.endswith("-int8")):
        # the crops the gallery was calibrated on, so that queries get the same int8 model
        calibration = [p if Path(p).is_absolute() else str(Path(gallery.root) / p)
                       for p in meta["calibration"]]
    extractor = FeatureExtractor(meta["model"], weights=weights,
                                 size=tuple(meta.get("input", (256, 128))),
                                 mean=meta.get("mean", (0.485, 0.456, 0.406)),
                                 std=meta.get("std", (0.229, 0.224, 0.225)),
                                 backend=args.backend, precision=precision,
                                 calibration=calibration)
    if extractor.selection is not None:
        print(f"backend auto: {extractor.selection.reason}")
    for q in args.queries:
        if not Path(q).is_file():
            raise CLIError(f"query image not found: {q}")
    q_emb = extractor(args.queries)
    g_emb = gallery.embeddings
    if not meta.get("normalized", True):
        from omnireid.inference.extractor import l2_normalize

        g_emb = l2_normalize(g_emb)
    try:
        index = build_index(g_emb, args.index, metric="ip")
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    result = index.search(q_emb, args.top)
    all_matches: list[list[Match]] = []
    for qi, q in enumerate(args.queries):
        hits = [Match(r + 1, gallery.paths[g], str(gallery.full_path(g)),
                      float(result.scores[qi, r]))
                for r, g in enumerate(result.indices[qi]) if g >= 0]
        all_matches.append(hits)
        print(f"query {q}")
        print_table(["rank", "similarity", "gallery image"],
                    [[m.rank, f"{m.score:.4f}", m.path] for m in hits])
        print()
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    picture = draw_ranked_grid(args.queries, all_matches, report / "ranked.png")
    page = write_html(args.queries, all_matches, report / "index.html", picture=picture.name)
    (report / "results.json").write_text(json.dumps(
        {"gallery": str(args.gallery), "index": args.index,
         "queries": [{"query": q, "matches": [m.__dict__ for m in hits]}
                     for q, hits in zip(args.queries, all_matches)]}, indent=2))
    print(f"report folder: {report} ({picture.name}, {page.name}, results.json)")
    return 0
