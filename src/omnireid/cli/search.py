"""`omnireid search --gallery gallery.npz QUERY...`: nearest gallery images of query crops."""

from __future__ import annotations

import argparse
from pathlib import Path

from omnireid.cli import CLIError
from omnireid.cli.util import positive_int
from omnireid.files import make_dirs, write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "search", help="find the gallery images closest to query crops",
        description="Embeds the query images with the model recorded in the gallery file, "
                    "searches the gallery (cosine similarity) and prints the top matches; "
                    "writes a picture of the ranked lists, an HTML page and a JSON file to the "
                    "report folder.")
    p.add_argument("queries", nargs="+", help="query image files")
    p.add_argument("--gallery", required=True, help="gallery file from `omnireid extract`")
    p.add_argument("--top", type=positive_int, default=10, help="matches per query (default 10)")
    p.add_argument("--index", default="exact",
                   help="exact (default), faiss-flat, faiss-ivf or faiss-hnsw")
    p.add_argument("--weights", help="checkpoint (default: the one recorded in the gallery; "
                                     "another copy must have the same sha256)")
    p.add_argument("--backend", default="auto",
                   help="inference backend for the queries (default auto: the fastest path that "
                        "meets the gallery's precision; see `omnireid extract --help`)")
    p.add_argument("--precision", choices=("fp32", "bf16", "int8"),
                   help="for --backend auto (default: the precision the gallery was made with)")
    p.add_argument("--allow-random-weights", action="store_true",
                   help="accept a gallery made with random weights")
    p.add_argument("--report", default="search_report", help="report folder (default "
                                                               "./search_report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from omnireid.cli.util import print_table
    from omnireid.inference.gallery import Gallery
    from omnireid.inference.index import build_index
    from omnireid.inference.provenance import extractor_for_record
    from omnireid.inference.runtime import BACKENDS
    from omnireid.inference.search_report import Match, draw_ranked_grid, write_html

    if args.backend != "auto" and args.backend not in BACKENDS:
        raise CLIError(f"--backend {args.backend!r} is not one of auto, {', '.join(BACKENDS)}")
    gallery = Gallery.load(args.gallery, allow_random=args.allow_random_weights)
    record = gallery.model
    if not record:
        raise CLIError(f"{args.gallery} records no model; re-create it with `omnireid extract`")
    meta = gallery.meta
    precision = args.precision or meta.get("precision", "fp32")
    calibration = None
    if meta.get("calibration") and (precision == "int8" or args.backend.endswith("-int8")):
        # the crops the gallery was calibrated on, so that queries get the same int8 model
        calibration = [p if Path(p).is_absolute() else str(Path(gallery.root) / p)
                       for p in meta["calibration"]]
    for q in args.queries:
        if not Path(q).is_file():
            raise CLIError(f"query image not found: {q}")
    extractor = extractor_for_record(record, Path(args.gallery).parent, weights=args.weights,
                                     what=f"gallery {args.gallery}",
                                     allow_random=args.allow_random_weights,
                                     backend=args.backend, precision=precision,
                                     calibration=calibration)
    if extractor.selection is not None:
        print(f"backend auto: {extractor.selection.reason}")
    q_emb = extractor(args.queries)
    if not np.isfinite(q_emb).all():
        raise CLIError(f"the query embeddings hold NaN or infinity: the checkpoint "
                       f"{record.get('weights')} is broken")
    g_emb = gallery.embeddings
    if q_emb.shape[1] != g_emb.shape[1]:
        raise CLIError(f"{args.gallery} holds {g_emb.shape[1]}-d embeddings but {record.get('model')} gives "
                       f"{q_emb.shape[1]}-d ones: the gallery and the model disagree (re-extract the gallery "
                       "with this model, or search it with the model that made it)")
    if not record.get("normalized", True):
        from omnireid.evaluation.distances import l2_normalize

        g_emb = l2_normalize(g_emb)
    index = build_index(g_emb, args.index, metric="ip")
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
    report = make_dirs(args.report)
    picture = draw_ranked_grid(args.queries, all_matches, report / "ranked.png")
    page = write_html(args.queries, all_matches, report / "index.html", picture=picture.name)
    write_json(report / "results.json",
               {"gallery": str(args.gallery), "index": args.index,
                "queries": [{"query": q, "matches": [m.__dict__ for m in hits]}
                            for q, hits in zip(args.queries, all_matches)]})
    print(f"report folder: {report} ({picture.name}, {page.name}, results.json)")
    return 0
