"""`omnireid data`: look at datasets (split table, unreadable names, cameras)."""

from __future__ import annotations

import argparse
import os

from omnireid.cli import CLIError
from omnireid.cli.util import print_table
from omnireid.data.summary import summarize, summary_dict
from omnireid.files import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="inspect datasets", description="Inspect datasets.")
    sub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    s = sub.add_parser("summary", help="print a dataset's split table (ids / images / cameras)",
                       description="Read a dataset and print ids, images and cameras per split, "
                                   "plus any files that could not be used.")
    s.add_argument("name", help="dataset name (see `omnireid data list`); join several with '+'")
    s.add_argument("--root", default=None,
                   help="data root (custom readers: the folder or CSV file; synthetic: the cache folder)")
    s.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="reader option, e.g. split_id=3, labeled=true, market1501_500k=true (repeatable)")
    s.add_argument("--combineall", action="store_true", help="also count query+gallery as training data")
    s.add_argument("--verify", action="store_true", help="decode every image and report unreadable ones")
    s.add_argument("--json", default=None, metavar="PATH", help="also write the summary as JSON")
    s.set_defaults(func=run_summary)
    lst = sub.add_parser("list", help="list dataset names")
    lst.set_defaults(func=run_list)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _value(text: str):
    low = text.lower()
    if low in ("true", "yes"):
        return True
    if low in ("false", "no"):
        return False
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"option must look like KEY=VALUE (got {item!r})")
        out[key.strip()] = _value(value.strip())
    return out


def run_list(args: argparse.Namespace) -> int:
    from omnireid.data import list_datasets

    for name in list_datasets():
        print(name)
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from omnireid.data import load_dataset
    options = parse_options(args.option)
    ds = load_dataset(args.name, args.root, combineall=args.combineall, **options)
    print(f"{ds.name}" + (f"  ({args.root})" if args.root else ""))
    rows = [[s.split, s.num_ids, s.num_images, s.num_cameras if ds.has_cameras else "unknown"]
            for s in summarize(ds)]
    print_table(["split", "ids", "images", "cameras"], rows)
    info = summary_dict(ds)
    if not ds.has_cameras:
        print("cameras: unknown -- evaluation cannot drop same-camera matches for this data")
    unparsed = ds.extra.get("unparsed") or {}
    if unparsed.get("count"):
        print(f"files not used: {unparsed['count']}, e.g.")
        for path, why in unparsed["examples"][:5]:
            print(f"  {os.path.basename(path)}: {why}")
    if ds.extra.get("junk_dropped"):
        print(f"junk images left out (id -1): {ds.extra['junk_dropped']}")
    for key in ("split_file", "protocol", "version", "synthetic_root"):
        if key in ds.extra:
            print(f"{key.replace('_', ' ')}: {ds.extra[key]}")
    info["unparsed"] = unparsed
    if args.verify:
        from omnireid.data import check_images

        paths = sorted({s.path for s in ds.train + ds.query + ds.gallery})
        bad = check_images(paths)
        print(f"verified {len(paths)} images: {len(bad)} unreadable")
        for path, why in bad[:10]:
            print(f"  {path}: {why}")
        info["unreadable"] = bad
    if args.json:
        write_json(args.json, info, indent=1, default=str)
        print(f"wrote {args.json}")
    return 0
