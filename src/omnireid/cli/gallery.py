"""`omnireid gallery add|remove|search|assign|info`: a gallery of known people kept in one file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from omnireid.cli import CLIError
from omnireid.cli.util import parse_size, print_table


def _common_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="checkpoint (default: the one recorded in the gallery; "
                                     "another copy must have the same sha256)")
    p.add_argument("--backend", help="inference backend (default: the gallery's)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--allow-random-weights", action="store_true",
                   help="accept a model without trained weights (tests and demos)")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gallery", help="a gallery of known people: add, remove, search, assign, info",
        description="Keeps embeddings of known crops with identity labels and metadata in one "
                    "file (the format `omnireid extract` writes). Search is exact while the "
                    "gallery is small and uses a FAISS index once it is large. Every command "
                    "checks that the model is the one the gallery was made with.")
    sub = p.add_subparsers(dest="gallery_command", metavar="ACTION", required=True)

    a = sub.add_parser("add", help="embed images and add them (creates the gallery)",
                       description="Embeds images and adds them. Labels: --label for all, "
                                   "--label-from-folder (the folder each image is in), or "
                                   "--manifest CSV (path,pid[,camid]). A new gallery needs "
                                   "--model and --weights.")
    a.add_argument("gallery", help="gallery file (.npz)")
    a.add_argument("sources", nargs="*", help="image files, folders or quoted globs")
    group = a.add_mutually_exclusive_group()
    group.add_argument("--label", help="identity label of every image added")
    group.add_argument("--label-from-folder", action="store_true",
                       help="label each image with the name of its folder")
    a.add_argument("--manifest", help="CSV path,pid[,camid] (paths relative to the CSV): the "
                                      "images to add with their labels and cameras")
    a.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                   help="metadata of every entry added, e.g. --meta camera=3 (repeatable)")
    a.add_argument("--model", help="model name (new gallery; default osnet_x1_0)")
    a.add_argument("--input", help="input size HxW (new gallery; default from the weights)")
    a.add_argument("--calibration", help="attach a calibration file (its threshold is used by "
                                         "assign); must be for the gallery's model")
    _common_model_args(a)
    a.set_defaults(func=run_add)

    r = sub.add_parser("remove", help="remove entries by id or identity")
    r.add_argument("gallery")
    r.add_argument("--id", dest="ids", type=int, action="append", default=[],
                   help="entry id (repeatable)")
    r.add_argument("--label", dest="labels", action="append", default=[],
                   help="remove every entry of this identity (repeatable)")
    r.set_defaults(func=run_remove)

    s = sub.add_parser("search", help="nearest entries of query crops")
    s.add_argument("gallery")
    s.add_argument("queries", nargs="+", help="query image files")
    s.add_argument("--top", type=int, default=5, help="entries per query (default 5)")
    s.add_argument("--json", action="store_true", help="print JSON")
    _common_model_args(s)
    s.set_defaults(func=run_search)

    g = sub.add_parser("assign", help="open set: a known identity for each crop, or new",
                       description="Assigns each query crop to the identity of its nearest "
                                   "labelled entry when the distance is within the same-person "
                                   "threshold (--threshold, --calibration, the gallery's, or "
                                   "the calibration beside its checkpoint), else reports it "
                                   "as new.")
    g.add_argument("gallery")
    g.add_argument("queries", nargs="+", help="query image files")
    g.add_argument("--threshold", type=float, help="cosine-distance threshold")
    g.add_argument("--calibration", help="calibration file from `omnireid calibrate`")
    g.add_argument("--add-new", action="store_true",
                   help="add each new person to the gallery under a new label (and save)")
    g.add_argument("--new-label", default="person-{id}",
                   help="label of new people, formatted with the entry id (default person-{id})")
    g.add_argument("--json", action="store_true", help="print JSON")
    _common_model_args(g)
    g.set_defaults(func=run_assign)

    i = sub.add_parser("info", help="what the gallery holds")
    i.add_argument("gallery")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--allow-random-weights", action="store_true")
    i.set_defaults(func=run_info)


# ---------------------------------------------------------------------------- helpers
def _parse_meta(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--meta {item!r} must look like key=value")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def _extractor(gallery, args: argparse.Namespace):
    from omnireid.inference.provenance import extractor_for_record

    record = gallery.model
    if not record:
        raise CLIError(f"{args.gallery} records no model; rebuild it with `omnireid gallery add`")
    return extractor_for_record(record, Path(args.gallery).parent, weights=args.weights,
                                what=f"gallery {args.gallery}",
                                allow_random=args.allow_random_weights,
                                backend=args.backend or record.get("backend") or "fused",
                                device=args.device, batch_size=args.batch_size)


def _images_to_add(args: argparse.Namespace) -> tuple[list[Path], list[str], list[dict]]:
    """Absolute image paths, labels and per-image metadata from sources or a manifest."""
    from omnireid.inference.gallery import find_images

    files: list[Path] = []
    labels: list[str] = []
    metas: list[dict] = []
    if args.manifest:
        manifest = Path(args.manifest)
        if not manifest.is_file():
            raise CLIError(f"manifest not found: {manifest}")
        with open(manifest, newline="") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
        if rows and [c.strip() for c in rows[0][:2]] == ["path", "pid"]:
            rows = rows[1:]
        for n, row in enumerate(rows, 1):
            if len(row) < 2:
                raise CLIError(f"{manifest}: row {n} needs path,pid[,camid], got {row}")
            path = Path(row[0].strip())
            files.append(path if path.is_absolute() else manifest.parent / path)
            labels.append(row[1].strip())
            meta = {}
            if len(row) > 2 and row[2].strip() not in ("", "-1"):
                meta["camera"] = row[2].strip()
            metas.append(meta)
    for source in args.sources:
        root, rel = find_images(source)
        if not rel:
            raise CLIError(f"no images found in {source}")
        for p in rel:
            full = root / p
            files.append(full)
            if args.label is not None:
                labels.append(args.label)
            elif args.label_from_folder:
                labels.append(full.parent.name)
            else:
                labels.append("")
            metas.append({})
    if not files:
        raise CLIError("nothing to add: give image files, folders or globs, or --manifest")
    return files, labels, metas


def _threshold(gallery, args: argparse.Namespace, extractor) -> tuple[float, str]:
    from omnireid.inference.verify import Calibration, default_calibration_path

    if args.threshold is not None:
        return args.threshold, "--threshold"
    if args.calibration:
        cal = Calibration.load(args.calibration)
        gallery.check_model(cal.model, f"calibration {args.calibration}",
                            allow_random=args.allow_random_weights)
        return cal.threshold, f"{args.calibration} (FPR {cal.target_fpr:g})"
    if isinstance(gallery.meta.get("same_person"), dict):
        cal = gallery.meta["same_person"]
        return gallery.threshold(), f"the gallery's calibration (FPR {cal.get('target_fpr')})"
    if extractor.weights is not None:
        beside = default_calibration_path(extractor.weights)
        if beside.is_file():
            cal = Calibration.load(beside)
            gallery.check_model(cal.model, f"calibration {beside}",
                                allow_random=args.allow_random_weights)
            return cal.threshold, f"{beside} (FPR {cal.target_fpr:g})"
    raise CLIError("no same-person threshold: pass --threshold or --calibration, or run "
                   "`omnireid calibrate` for the gallery's checkpoint")


def _queries(paths: list[str]) -> None:
    for q in paths:
        if not Path(q).is_file():
            raise CLIError(f"query image not found: {q}")


# ---------------------------------------------------------------------------- actions
def run_add(args: argparse.Namespace) -> int:
    from omnireid.inference import FeatureExtractor
    from omnireid.inference.gallery import Gallery, locked
    from omnireid.inference.verify import Calibration

    path = Path(args.gallery)
    extra = _parse_meta(args.meta)
    files, labels, metas = _images_to_add(args)
    with locked(path):
        if path.exists():
            gallery = Gallery.load(path, allow_random=args.allow_random_weights)
            if args.model and args.model != gallery.model.get("model"):
                raise CLIError(f"{path} holds embeddings of {gallery.model.get('model')}, not "
                               f"{args.model}")
            extractor = _extractor(gallery, args)
            created = False
        else:
            if args.weights is None and not args.allow_random_weights:
                raise CLIError(f"{path} does not exist yet: give --model and --weights to "
                               "create it")
            extractor = FeatureExtractor(args.model or "osnet_x1_0", weights=args.weights,
                                         device=args.device, batch_size=args.batch_size,
                                         backend=args.backend or "fused",
                                         size=parse_size(args.input) if args.input else None)
            gallery = Gallery.for_extractor(extractor, root=path.parent.resolve(),
                                            allow_random=args.allow_random_weights)
            created = True
        if args.calibration:
            cal = Calibration.load(args.calibration)
            gallery.check_model(cal.model, f"calibration {args.calibration}",
                                allow_random=args.allow_random_weights)
            gallery.meta["same_person"] = {"threshold": cal.threshold,
                                           "target_fpr": cal.target_fpr,
                                           "file": str(Path(args.calibration).resolve())}
        result = extractor.extract([str(f) for f in files], progress=sys.stderr.isatty(),
                                   strict=False)
        root = Path(gallery.root)
        rel = []
        for i in result.indices:
            try:
                rel.append(str(files[i].resolve().relative_to(root)))
            except ValueError:
                rel.append(str(files[i].resolve()))
        kept_meta = [{**metas[i], **extra} for i in result.indices]
        new_ids = gallery.add(result.embeddings, [labels[i] for i in result.indices], rel,
                              kept_meta)
        if len(new_ids) or (args.calibration and not created):
            gallery.save(path)
    for i, msg in result.failed:
        print(f"skipped unreadable image {files[i]}: {msg}")
    first = f"ids {new_ids[0]}..{new_ids[-1]}" if len(new_ids) else "nothing"
    print(f"{'created' if created else 'updated'} {path}: added {len(new_ids)} entries "
          f"({first}); {len(gallery)} entries of {len(gallery.identities())} identities")
    return 0 if len(new_ids) else 2


def run_remove(args: argparse.Namespace) -> int:
    from omnireid.inference.gallery import Gallery, locked

    if not args.ids and not args.labels:
        raise CLIError("say what to remove: --id N or --label NAME")
    path = Path(args.gallery)
    with locked(path):
        gallery = Gallery.load(path, allow_random=True)
        try:
            removed = gallery.remove(args.ids or None, args.labels or None)
        except KeyError as exc:
            raise CLIError(f"{path}: {exc.args[0]}") from None
        gallery.save(path)
    print(f"removed {removed} entries from {path}; {len(gallery)} left")
    return 0


def run_search(args: argparse.Namespace) -> int:
    from omnireid.inference.gallery import Gallery

    gallery = Gallery.load(args.gallery, allow_random=args.allow_random_weights)
    _queries(args.queries)
    extractor = _extractor(gallery, args)
    hits = gallery.search(extractor(args.queries), args.top)
    out = []
    for qi, q in enumerate(args.queries):
        rows = []
        for rank, (e, r, d, lab) in enumerate(zip(hits.ids[qi], hits.rows[qi],
                                                  hits.distances[qi], hits.labels[qi]), 1):
            if e < 0:
                continue
            rows.append({"rank": rank, "id": int(e), "label": lab, "distance": float(d),
                         "path": gallery.paths[r], "meta": gallery.entry_meta[r]})
        out.append({"query": q, "matches": rows})
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for item in out:
        print(f"query {item['query']}")
        print_table(["rank", "distance", "id", "identity", "path"],
                    [[m["rank"], f"{m['distance']:.4f}", m["id"], m["label"] or "-",
                      m["path"] or "-"] for m in item["matches"]])
        print()
    return 0


def run_assign(args: argparse.Namespace) -> int:
    from omnireid.inference.gallery import Gallery, locked

    path = Path(args.gallery)
    _queries(args.queries)
    with locked(path):
        gallery = Gallery.load(path, allow_random=args.allow_random_weights)
        extractor = _extractor(gallery, args)
        threshold, source = _threshold(gallery, args, extractor)
        emb = extractor(args.queries)
        qpaths = [str(Path(q).resolve()) for q in args.queries]
        results = gallery.assign(emb, threshold, add_new=args.add_new,
                                 new_label=args.new_label, paths=qpaths)
        if args.add_new and any(a.new for a in results):
            gallery.save(path)
    rows = [{"query": q, "identity": a.label, "new": a.new, "distance": a.distance,
             "nearest": a.nearest_label, "entry_id": a.entry_id,
             "runner_up": a.runner_up_label, "runner_up_distance": a.runner_up_distance}
            for q, a in zip(args.queries, results)]
    if args.json:
        print(json.dumps({"threshold": threshold, "threshold_from": source, "queries": rows},
                         indent=2))
        return 0
    print(f"threshold {threshold:.4f} from {source}")
    print_table(["query", "identity", "distance", "nearest", "runner-up"],
                [[r["query"], ("NEW " + (r["identity"] or "")).strip() if r["new"]
                  else r["identity"], f"{r['distance']:.4f}", r["nearest"] or "-",
                  f"{r['runner_up']} {r['runner_up_distance']:.4f}" if r["runner_up"] else "-"]
                 for r in rows])
    return 0


def run_info(args: argparse.Namespace) -> int:
    from omnireid.inference.gallery import Gallery

    gallery = Gallery.load(args.gallery, allow_random=args.allow_random_weights)
    info = gallery.info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    model = info["model"]
    sha = model.get("weights_sha256")
    print(f"{args.gallery}: {info['entries']} entries ({info['dim']}-d), {info['identities']} "
          f"identities, {info['unlabelled']} unlabelled; search: {info['index']}")
    print(f"model {model.get('model')}, weights {model.get('weights')} "
          f"(sha256 {sha[:16] + '...' if sha else 'none: random weights'}), input "
          f"{'x'.join(map(str, model.get('input', [])))}")
    cal = info.get("same_person")
    if cal:
        print(f"threshold {cal['threshold']:.4f} (FPR {cal.get('target_fpr')})")
    if info["largest_identities"]:
        print("largest identities: " + ", ".join(f"{k} ({v})" for k, v in
                                                 info["largest_identities"].items()))
    return 0
