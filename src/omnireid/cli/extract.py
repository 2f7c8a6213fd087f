"""`omnireid extract DIR_OR_GLOB -o gallery.npz`: embed a folder of crops."""

from __future__ import annotations

import argparse
import time

from omnireid.cli import CLIError
from omnireid.cli.util import device_arg, non_negative_int, positive_int, size_arg
from omnireid.files import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract", help="embed every image of a folder (or glob) into a gallery file",
        description="Embeds the images under a folder (recursively) or matching a glob and "
                    "writes a gallery file (.npz, the format of `omnireid gallery`) with the "
                    "L2-normalised embeddings, the image paths relative to the folder, and the "
                    "model, checkpoint and its sha256. Unreadable images are listed and skipped "
                    "(an error with --strict).")
    p.add_argument("source", help="a folder, an image file, or a glob pattern (quote it)")
    p.add_argument("-o", "--output", required=True, help="gallery file to write (.npz)")
    p.add_argument("--model", default="osnet_x1_0", help="model name (default osnet_x1_0)")
    p.add_argument("--weights", help="checkpoint to load (required unless --allow-random-weights)")
    p.add_argument("--allow-random-weights", action="store_true",
                   help="extract with the model's random initial weights (for a test: such a gallery "
                        "identifies nobody)")
    add_backend_options(p)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=non_negative_int, default=None,
                   help="threads decoding the next batch while the model runs (default: 0 for "
                        "the PyTorch backends on the CPU, 2 for ONNX Runtime/OpenVINO, 4 on a GPU)")
    p.add_argument("--micro-batch", default="auto", type=parse_micro_batch,
                   help="images per forward pass inside a batch for the PyTorch backends: "
                        "auto (default: sized to the CPU cache), a number, or off")
    p.add_argument("--input", type=size_arg, help="input size HxW (default: from known weights, else 256x128)")
    p.add_argument("--device", type=device_arg, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-normalize", action="store_true", help="store raw embeddings")
    p.add_argument("--on-bad-image", choices=("error", "skip"), default="skip",
                   help="an unreadable image: skip and list it (default) or stop with an error naming it")
    p.add_argument("--strict", action="store_true", help="same as --on-bad-image error")
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
    from omnireid.inference.runtime import BACKENDS

    if args.backend != "auto" and args.backend not in BACKENDS:
        raise CLIError(f"--backend {args.backend!r} is not one of auto, {', '.join(BACKENDS)}")
    if args.weights is None and not args.allow_random_weights:
        raise CLIError("--weights is required: a gallery made with random weights identifies "
                       "nobody (--allow-random-weights to make one anyway)")
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
        size=args.input, normalize=not args.no_normalize, backend=args.backend,
        micro_batch=args.micro_batch, num_workers=args.workers, precision=args.precision,
        calibration=calibration)
    if extractor.selection is not None:
        print(f"backend auto: {extractor.selection.reason}")
    start = time.perf_counter()
    strict = args.strict or args.on_bad_image == "error"
    result = extractor.extract([root / p for p in rel], progress=True, strict=strict)
    failed = [{"path": rel[i], "error": msg} for i, msg in result.failed]
    gallery = Gallery.for_extractor(extractor, root=root,
                                    allow_random=args.allow_random_weights)
    gallery.meta.update({"source": str(args.source), "failed": failed,
                         "precision": args.precision, "calibration": calib_rel})
    gallery.add(result.embeddings, paths=[rel[i] for i in result.indices])
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
    summary = {"gallery": str(path), "images": len(gallery), "failed": failed,
               "source": str(args.source), "model": gallery.model}
    json_path = write_json(path.with_suffix(".json"), summary)
    print(f"wrote {json_path}")
    return 0


def evenly_spaced(items: list, limit: int) -> list:
    """At most ``limit`` items, evenly spaced over the list (all of them if fewer)."""
    if len(items) <= limit:
        return list(items)
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]
