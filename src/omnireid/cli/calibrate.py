"""`omnireid calibrate DATA --weights W`: a same-person threshold for a chosen false-match rate."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from omnireid.cli import CLIError
from omnireid.cli.util import parse_size, print_table


def _rates(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected rates in (0, 1) separated by commas, "
                                         f"got {text!r}")
    return values


def _rate(text: str) -> float:
    values = _rates(text)
    if len(values) != 1:
        raise argparse.ArgumentTypeError(f"expected one rate, got {text!r}")
    return values[0]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate", help="choose a same-person threshold for a false-match rate",
        description="Embeds a labelled set (a folder per identity, a CSV manifest "
                    "path,pid,camid, or a registered dataset with --dataset), measures the "
                    "cosine distances of all same-person and different-person pairs, and "
                    "reports the ROC, the EER and TPR at each false-match rate with the number "
                    "of pairs behind it and intervals from resampling identities. Saves the "
                    "threshold for --fpr beside the checkpoint (<weights>.calibration.json), "
                    "where `omnireid gallery assign` and omnireid.inference.Verifier find it, "
                    "and writes a plot and the full figures to the report folder.")
    p.add_argument("data", help="folder with one sub-folder per identity, a CSV manifest, or "
                                "the data root of --dataset")
    p.add_argument("--dataset", help="registered dataset name (see `omnireid data list`)")
    p.add_argument("--split", default="auto", choices=["auto", "test", "train", "all"],
                   help="which images (default auto: query+gallery when there are any, else "
                        "train)")
    p.add_argument("--model", default="osnet_x1_0", help="model name (default osnet_x1_0)")
    p.add_argument("--weights", help="checkpoint to calibrate")
    p.add_argument("--fpr", type=_rate, default=1e-3,
                   help="false-match rate the saved threshold is chosen for (default 1e-3)")
    p.add_argument("--report-fprs", type=_rates, default=[1e-2, 1e-3, 1e-4],
                   help="rates to report, comma-separated (default 1e-2,1e-3,1e-4)")
    p.add_argument("--cross-camera", action="store_true",
                   help="count only pairs seen by different cameras")
    p.add_argument("--max-negatives", type=int, default=10_000_000,
                   help="sample different-person pairs above this many (default 10M)")
    p.add_argument("-o", "--output", help="calibration file (default: beside the weights)")
    p.add_argument("--report", default="calibration_report",
                   help="folder for calibration.png and calibration.json")
    p.add_argument("--input", help="input size HxW (default: from known weights, else 256x128)")
    p.add_argument("--backend", default="fused", help="inference backend (default fused)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--allow-random-weights", action="store_true",
                   help="calibrate a model without trained weights (meaningless but testable)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.inference import FeatureExtractor
    from omnireid.inference.verify import calibrate, default_calibration_path, load_labelled_set

    if args.weights is None and not args.allow_random_weights:
        raise CLIError("--weights is required: a threshold for random weights means nothing "
                       "(--allow-random-weights to do it anyway)")
    if args.output is None and args.weights is None:
        raise CLIError("-o is required without --weights")
    output = Path(args.output) if args.output else default_calibration_path(args.weights)
    if not os.access(output.parent if output.parent.exists() else Path("."), os.W_OK):
        raise CLIError(f"cannot write {output}: its folder is not writable; choose a file with -o")
    labelled = load_labelled_set(args.data, dataset=args.dataset, split=args.split)
    extractor = FeatureExtractor(args.model, weights=args.weights, device=args.device,
                                 batch_size=args.batch_size, backend=args.backend,
                                 size=parse_size(args.input) if args.input else None)
    print(f"calibrating {args.model} on {labelled.description['images']} images of "
          f"{labelled.description['identities']} identities ({labelled.description['dataset']}, "
          f"split {labelled.description['split']})", flush=True)
    run_ = calibrate(extractor, labelled.paths, labelled.labels, labelled.cameras,
                     target_fpr=args.fpr, fprs=args.report_fprs, cross_camera=args.cross_camera,
                     max_negatives=args.max_negatives, progress=sys.stderr.isatty(),
                     description=labelled.description)
    res = run_.result
    for i, msg in run_.failed:
        print(f"left out unreadable image {labelled.paths[i]}: {msg}")
    print(f"\n{res.roc.num_positive:,} same-person pairs, {res.roc.num_negative:,} "
          f"different-person pairs, {res.num_identities} identities")
    print(f"EER {100 * res.eer:.2f} % at distance {res.eer_threshold:.4f}\n")
    rows = []
    for p in res.points:
        ident = (f"{p.identities.fpr[0]:.2g}-{p.identities.fpr[1]:.2g}" if p.identities
                 else "-")
        rows.append([f"{p.target_fpr:g}", f"{p.threshold:.4f}", f"{p.fpr:.2e}",
                     f"{p.false_matches:,}/{p.num_negative:,}", f"{100 * p.tpr:.2f}",
                     f"{p.true_matches:,}/{p.num_positive:,}", ident,
                     "yes" if p.enough else "NO"])
    print_table(["target FPR", "threshold", "FPR", "false matches", "TPR %", "true matches",
                 "FPR 95% (identities)", "enough data"], rows)
    for note in res.notes:
        print(f"warning: {note}")
    path = run_.calibration.save(output)
    caveat = "" if res.point(args.fpr).enough else " (NOT reliable: set too small, see above)"
    print(f"\nthreshold {run_.calibration.threshold:.4f} (FPR {args.fpr:g}){caveat} -> {path}")
    report = Path(args.report)
    report.mkdir(parents=True, exist_ok=True)
    (report / "calibration.json").write_text(json.dumps(run_.calibration.to_dict(), indent=2))
    try:
        from omnireid.viz.verification_plot import plot_verification

        picture = plot_verification(res, report / "calibration.png",
                                    title=f"{args.model} on {'/'.join(Path(args.data).parts[-2:])}"
                                          f" ({res.num_identities} identities)")
        print(f"report folder: {report} ({picture.name}, calibration.json)")
    except ImportError as exc:
        print(f"report folder: {report} (calibration.json; no plot: {exc})")
    return 0
