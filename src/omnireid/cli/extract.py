"""`omnireid extract DIR_OR_GLOB -o gallery.npz`: embed a folder of crops."""

from __future__ import annotations

import argparse
import json
import time

from omnireid.cli import CLIError
from omnireid.cli.util import parse_size


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract", help="embed every image of a folder (or glob) into a gallery file",
        description="Embeds the images under a folder (recursively) or matching a glob and "
                    "writes an .npz with the L2-normalised embeddings, the image paths relative "
                    "to the folder, and the model/weights used. Unreadable images are listed "
                    "and skipped (an error with --strict).")
    p.add_argument("source", help="a folder, an image file, or a glob pattern (quote it)")
    p.add_argument("-o", "--output", required=True, help="gallery file to write (.npz)")
    p.add_argument("--model", default="osnet_x1_0", help="model name (default osnet_x1_0)")
    p.add_argument("--weights", help="checkpoint to load")
    add_backend_options(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=None,
                   help="threads decoding the next batch while the model runs (default: 0 for "
                        "the PyTorch backends on the CPU, 2 for ONNX Runtime/OpenVINO, 4 on a GPU)")
    p.add_argument("--micro-batch", default="auto", type=parse_micro_batch,
                   help="images per forward pass inside a batch for the PyTorch backends: "
                        "auto (default: sized to the CPU cache), a number, or off")
    p.add_argument("--input", help="input size HxW (default: from known weights, else 256x128)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-normalize", action="store_true", help="store raw embeddings")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable image")
    p.set_defaults(func=run)


def add_backend_options(p: argparse.ArgumentParser, calibration: bool = True) -> None:
    """--backend (default auto), --precision and, for int8, --calibration."""
    p.add_argument("--backend", default="auto",
                   help="auto (default: the fastest installed path meeting --precision, measured "
                        "once on this machine and cached), fused, eager, bf16, onnxruntime, "
                        "openvino, openvino-bf16, onnxruntime-int8 or openvino-int8")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "int8"),
                   help="for --backend auto: fp32 (default; embeddings equal to the plain "
                        "model's to 1e-4), bf16 or int8 (also paths of that precision that pass "
                        "an accuracy gate against fp32)")
    if calibration:
        p.add_argument("--calibration",
                       help="int8: folder, file or glob of crops to calibrate on (default: an "
                            "evenly spaced sample of at most 128 of the images being embedded)")


def parse_micro_batch(text: str) -> int | str | None:
    """``auto`` -> "auto", ``off`` -> None, a positive integer -> int."""
    if text in ("auto", "off"):
        return None if text == "off" else text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected auto, off or a positive integer, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from omnireid.inference import FeatureExtractor
    from omnireid.inference.gallery import Gallery, find_images

    root, rel = find_images(args.source)
    if not rel:
        raise CLIError(f"no images found in {args.source}")
    calibration, calib_rel = None, None
    if args.precision == "int8" or args.backend.endswith("-int8"):
        calib_root, calib_rel = (root, rel) if not args.calibration else \
            find_images(args.calibration)
        calib_rel = evenly_spaced(calib_rel, 128)
        calibration = [calib_root / p for p in calib_rel]
        if args.calibration:
            calib_rel = [str(calib_root / p) for p in calib_rel]
    extractor = FeatureExtractor(
        args.model, weights=args.weights, device=args.device, batch_size=args.batch_size,
        size=parse_size(args.input) if args.input else None,
        normalize=not args.no_normalize, backend=args.backend, micro_batch=args.micro_batch,
        num_workers=args.workers, precision=args.precision, calibration=calibration)
    if extractor.selection is not None:
        print(f"backend auto: {extractor.selection.reason}")
    start = time.perf_counter()
    try:
        result = extractor.extract([root / p for p in rel], progress=True,
                                   strict=args.strict)
    except (OSError, ValueError) as exc:
        raise CLIError(f"{exc} (--strict)") from None
    failed = [{"path": rel[i], "error": msg} for i, msg in result.failed]
    meta = {"model": args.model, "weights": args.weights, "backend": extractor.backend,
            "precision": args.precision, "calibration": calib_rel,
            "input": list(extractor.size), "mean": list(extractor.mean),
            "std": list(extractor.std), "normalized": extractor.normalize,
            "source": str(args.source), "failed": failed}
    gallery = Gallery(result.embeddings, [rel[i] for i in result.indices], str(root), meta)
    path = gallery.save(args.output)
    seconds = time.perf_counter() - start
    print(f"embedded {len(gallery)} of {len(rel)} images with {args.model} -> "
          f"{gallery.embeddings.shape[1]}-d in {seconds:.1f} s "
          f"({len(rel) / max(seconds, 1e-9):.0f} images/s, backend {extractor.backend})")
    if failed:
        print(f"{len(failed)} unreadable image(s) skipped:")
        for f in failed:
            print(f"  {f['path']}: {f['error']}")
    print(f"wrote {path}")
    summary = {"gallery": str(path), "images": len(gallery), "failed": failed, **meta}
    json_path = path.with_suffix(".json")
    json_path.write_text(json.dumps(summary, indent=2))
    print(f"wrote {json_path}")
    return 0


def evenly_spaced(items: list, limit: int) -> list:
    """At most ``limit`` items, evenly spaced over the list (all of them if fewer)."""
    if len(items) <= limit:
        return list(items)
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]
