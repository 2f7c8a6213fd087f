"""int8 graphs with and without the average pools rewritten as depthwise convolutions.

:func:`omnireid.inference.quantize.quantize_onnx_int8` rewrites every non-overlapping average
pool of the exported graph as the depthwise convolution it equals before quantising
(:func:`~omnireid.inference.quantize.pools_as_depthwise_convs`). This script quantises the same
exported graph twice on the same calibration crops, with the rewrite and without it, and runs
both with ONNX Runtime and OpenVINO, interleaved
(:func:`omnireid.inference.bench.time_interleaved`), on one seeded random batch. Printed: images/s
of each, and the mean cosine similarity of each to the fp32 graph's embeddings.

    python benchmarks/bench_int8_pools.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from unittest import mock

from _ab_setup import SIZE, ab_parser, machine_line, model_and_batch, path_runners


def main() -> None:
    args = ab_parser(__doc__, repeats=2).parse_args()

    from omnireid.inference import quantize
    from omnireid.inference.accuracy import cosine_rows
    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.runtime import available_backends, make_runner

    size = SIZE
    model, x = model_and_batch(args)
    folder = Path(tempfile.mkdtemp(prefix="bench-int8-pools-"))
    fp32 = export_onnx(model, folder / "model.onnx", size)
    calib = quantize.calibration_batch(None, size, IMAGENET_MEAN, IMAGENET_STD)
    graphs = {"pools rewritten": quantize.quantize_onnx_int8(fp32, folder / "dw.onnx", calib)}
    with mock.patch.object(quantize, "pools_as_depthwise_convs", lambda path: 0):
        graphs["pools kept"] = quantize.quantize_onnx_int8(fp32, folder / "pool.onnx", calib)
    reference = make_runner("onnxruntime", fp32, size, num_threads=args.threads)(x)
    backends = [b for b in ("onnxruntime-int8", "openvino-int8") if b in available_backends()]
    by_graph = {g: path_runners(backends, path, args) for g, path in graphs.items()}
    runners = {f"{b}, {g}": by_graph[g][b] for b in backends for g in graphs}
    print(machine_line(args))
    for name, run in runners.items():
        out = run(x)
        cos = float(cosine_rows(out, reference).mean())
        print(f"  {name:38s} mean cosine to fp32 {cos:.5f}")
    for rep in range(args.repeats):
        times = time_interleaved(runners, x, rounds=args.rounds, warmup=2)
        print(f"run {rep + 1}: " + "; ".join(f"{n} {args.batch / statistics.median(t):.1f} img/s"
                                            for n, t in times.items()), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
