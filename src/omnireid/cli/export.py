"""`omnireid export`: ONNX or OpenVINO IR (fp32 or int8) with a parity report against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from omnireid.cli import CLIError
from omnireid.cli.util import size_arg
from omnireid.files import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX or OpenVINO IR (dynamic batch, fp32 or int8)",
        description="Exports the embedding network (BatchNorm folded, input 'images' "
                    "(N,3,H,W) float32, output 'embeddings' (N,D)) and checks it against "
                    "PyTorch on random batches. fp32: the largest absolute difference is printed "
                    "and must stay under --tolerance. int8: post-training static quantisation "
                    "calibrated on --calibration crops (default: synthetic crops); the report "
                    "gives the differences to fp32 and the accuracy gate (rank-1/mAP and cosine "
                    "on labelled crops against fp32, same run), which must pass.")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--weights", help="checkpoint to load")
    p.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    p.add_argument("--precision", choices=["fp32", "int8"], default="fp32")
    p.add_argument("--calibration",
                   help="int8: folder, file or glob of crops like the ones the model will see "
                        "(at most 128, evenly spaced, are used; default: synthetic crops)")
    p.add_argument("-o", "--output", required=True, help="output file (.onnx, or .xml for IR)")
    p.add_argument("--input", type=size_arg, default=None,
                   help="input size HxW (default: the input size of known --weights, else 256x128)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="fp32: largest allowed |exported - PyTorch| (default 1e-4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.inference.export import export_int8, export_onnx, export_openvino
    from omnireid.inference.runtime import check_parity
    from omnireid.models import create_model
    from omnireid.models.weights import preprocessing_of

    if args.tolerance <= 0:
        raise CLIError(f"--tolerance must be > 0, got {args.tolerance:g}")
    model = create_model(args.model, weights=args.weights).eval()
    own = preprocessing_of(model)  # what known weights were trained with
    size = args.input or own.input_size
    gate = None
    calib_source = None
    try:
        if args.precision == "int8":
            calibration, calib_source = _calibration(args.calibration, size, own.mean, own.std)
            output = Path(args.output)
            if args.format == "openvino" and output.suffix != ".xml":
                output = output.with_suffix(".xml")
            path = export_int8(model, output, calibration, size)
        elif args.format == "onnx":
            path = export_onnx(model, args.output, size)
        else:
            path = export_openvino(model, args.output, size)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    report = check_parity(model, path, size)
    print(f"wrote {path}")
    print(f"parity vs PyTorch fp32 ({report.backend}, random batches {report.batch_sizes}): "
          f"max abs diff {report.max_abs_diff:.2e} (largest |value| {report.max_abs_value:.2f}), "
          f"smallest cosine {report.min_cosine:.5f}")
    if args.precision == "int8":
        from omnireid.inference.autoselect import gate_runner
        from omnireid.inference.runtime import make_runner

        gate = gate_runner(model, make_runner(report.backend, path), "int8", size, own.mean,
                           own.std)
        print(f"int8 accuracy gate ({gate.num_queries} synthetic queries, fp32 in the same run): "
              f"{'passed' if gate.passed else 'FAILED'}: {gate.reason}")
    summary = {"path": str(path), "format": args.format, "precision": args.precision,
               "model": args.model, "weights": args.weights, "input": list(size),
               "max_abs_diff": report.max_abs_diff, "max_abs_value": report.max_abs_value,
               "min_cosine": report.min_cosine, "tolerance": args.tolerance,
               "calibration": calib_source, "gate": gate.to_dict() if gate else None}
    json_path = write_json(Path(path).with_suffix(".export.json"), summary)
    print(f"wrote {json_path}")
    if gate is not None and not gate.passed:
        # a refused model is not left where it could be deployed; the report stays
        for refused in (Path(path), Path(path).with_suffix(".bin")):
            refused.unlink(missing_ok=True)
        raise CLIError(f"int8 model fails its accuracy gate: {gate.reason} (model removed; "
                       f"report in {json_path})")
    if args.precision == "fp32" and report.max_abs_diff > args.tolerance:
        raise CLIError(f"exported model differs from PyTorch by {report.max_abs_diff:.2e} "
                       f"(> tolerance {args.tolerance:g})")
    return 0


def _calibration(source: str | None, size: tuple[int, int], mean, std):
    """Preprocessed calibration crops and a description of where they came from."""
    from omnireid.inference.gallery import find_images
    from omnireid.inference.quantize import calibration_batch

    if source is None:
        return calibration_batch(None, size, mean, std), "synthetic crops"
    root, rel = find_images(source)
    if not rel:
        raise CLIError(f"no calibration images found in {source}")
    batch = calibration_batch([root / p for p in rel], size, mean, std)
    return batch, f"{len(batch)} of {len(rel)} images in {source}"
