"""`omnireid export`: ONNX or OpenVINO IR with a parity check against PyTorch."""

from __future__ import annotations

import argparse
from pathlib import Path

from omnireid.cli import CLIError
from omnireid.cli.util import size_arg
from omnireid.files import write_json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="export a model to ONNX or OpenVINO IR (dynamic batch)",
        description="Exports the embedding network (BatchNorm folded, input 'images' "
                    "(N,3,H,W) float32, output 'embeddings' (N,D)) and checks it against "
                    "PyTorch on random batches; the largest absolute difference is printed and "
                    "must stay under --tolerance.")
    p.add_argument("--model", required=True, help="model name")
    p.add_argument("--weights", help="checkpoint to load")
    p.add_argument("--format", choices=["onnx", "openvino"], default="onnx")
    p.add_argument("-o", "--output", required=True, help="output file (.onnx, or .xml for IR)")
    p.add_argument("--input", type=size_arg, default=(256, 128), help="input size HxW (default 256x128)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest allowed |exported - PyTorch| (default 1e-4)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from omnireid.inference.export import check_parity, export_onnx, export_openvino
    from omnireid.models import create_model

    size = args.input
    if args.tolerance <= 0:
        raise CLIError(f"--tolerance must be > 0, got {args.tolerance:g}")
    model = create_model(args.model, weights=args.weights).eval()
    if args.format == "onnx":
        path = export_onnx(model, args.output, size)
    else:
        path = export_openvino(model, args.output, size)
    report = check_parity(model, path, size)
    print(f"wrote {path}")
    print(f"parity vs PyTorch ({report.backend}, batches {report.batch_sizes}): "
          f"max abs diff {report.max_abs_diff:.2e} (largest |value| {report.max_abs_value:.2f})")
    summary = {"path": str(path), "format": args.format, "model": args.model,
               "weights": args.weights, "input": list(size),
               "max_abs_diff": report.max_abs_diff, "tolerance": args.tolerance}
    json_path = write_json(Path(path).with_suffix(".export.json"), summary)
    print(f"wrote {json_path}")
    if report.max_abs_diff > args.tolerance:
        raise CLIError(f"exported model differs from PyTorch by {report.max_abs_diff:.2e} "
                       f"(> tolerance {args.tolerance:g})")
    return 0
