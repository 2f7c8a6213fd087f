"""int8 from ONNX Runtime's quantiser (the library's) against OpenVINO's own quantiser, NNCF.

The library quantises with ``onnxruntime.quantization`` (QDQ graph, int8 per-channel weights,
uint8 asymmetric activations, min/max ranges) and runs that file with ONNX Runtime or OpenVINO.
This script quantises the same exported fp32 graph, on the same calibration crops, with NNCF
(``nncf.quantize`` on the OpenVINO model read from that ONNX file) in its two presets:

* ``performance``: symmetric activations (unsigned where a tensor is never negative);
* ``mixed``: asymmetric activations, as the library's graph has.

Then it times every int8 model, interleaved (:func:`omnireid.inference.bench.time_interleaved`),
on OpenVINO as ``openvino-int8`` runs it (float operations in bf16 where the CPU has native bf16,
the streams ``auto`` gives the batch), beside ONNX Runtime on the library's graph, and prints the
mean cosine of each to the fp32 graph's embeddings on the timed batch.

With ``--accuracy`` it also measures retrieval on the real CUHK03 crops of the compatibility
material with torchreid's genuine osnet_x0_25 MSMT17 weights (the library's evaluator, as
``int8_accuracy_real_crops.py``), for both quantisers calibrated on the default synthetic crops
and on 128 MOT17 pedestrian crops. Needs ``nncf`` (not a dependency of the library):

    pip install nncf
    python benchmarks/bench_int8_nncf.py --model osnet_x1_0 --batch 16 --threads 2
    python benchmarks/bench_int8_nncf.py --model osnet_x0_25 --batch 64 --threads 2
    python benchmarks/bench_int8_nncf.py --accuracy-only --threads 2
    python benchmarks/bench_int8_nncf.py --profile --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
from _ab_setup import SIZE, ab_parser, machine_line, model_and_batch


def nncf_int8(fp32_onnx: Path, out_xml: Path, calibration: np.ndarray, preset: str) -> Path:
    """``fp32_onnx`` quantised by NNCF (``preset`` ``performance`` or ``mixed``) on the crops of
    ``calibration`` (one crop per calibration sample), saved as OpenVINO IR."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_onnx))
    samples = [calibration[i:i + 1] for i in range(len(calibration))]
    quantised = nncf.quantize(
        model, nncf.Dataset(samples),
        preset={"performance": nncf.QuantizationPreset.PERFORMANCE,
                "mixed": nncf.QuantizationPreset.MIXED}[preset],
        subset_size=len(samples))
    ov.save_model(quantised, str(out_xml), compress_to_fp16=False)
    return out_xml


def per_crop_ranges(record, onnx_path, calibration: np.ndarray, batch_size: int = 16) -> dict:
    """NNCF's range estimator for per-tensor activations (``MEAN_MINMAX``) in place of the
    library's min/max over all crops: the mean over the crops of each crop's own minimum and
    maximum, from ``record`` (the library's recorder) run on one crop at a time."""
    per = [record(onnx_path, calibration[i:i + 1], 1) for i in range(len(calibration))]
    return {name: tuple(np.mean([p[name][k] for p in per], axis=0, dtype=np.float64)
                        .astype(np.float32) for k in (0, 1))
            for name in per[0]}


def _library_graph(fp32: Path, out: Path, calibration: np.ndarray, ranges: str) -> Path:
    from omnireid.inference import quantize

    if ranges == "minmax":
        return quantize.quantize_onnx_int8(fp32, out, calibration)
    record = quantize.activation_ranges
    with mock.patch.object(quantize, "activation_ranges",
                           lambda path, calib, batch: per_crop_ranges(record, path, calib, batch)):
        return quantize.quantize_onnx_int8(fp32, out, calibration)


def int8_graphs(fp32: Path, folder: Path, calibration: np.ndarray, tag: str,
                estimators: bool = False) -> dict[str, Path]:
    """The library's int8 graph and NNCF's two, all from ``fp32`` on ``calibration``; prints
    the seconds each quantiser took. With ``estimators``, the library's graph also with NNCF's
    range estimator (:func:`per_crop_ranges`)."""
    graphs = {}
    ours = [(f"onnxruntime quantiser, {r} ranges",
             lambda r=r: _library_graph(fp32, folder / f"ort-{r}-{tag}.onnx", calibration, r))
            for r in (("minmax", "mean_minmax") if estimators else ("minmax",))]
    for name, make in (
        *ours,
        ("nncf performance", lambda: nncf_int8(fp32, folder / f"nncf-perf-{tag}.xml",
                                               calibration, "performance")),
        ("nncf mixed", lambda: nncf_int8(fp32, folder / f"nncf-mixed-{tag}.xml", calibration,
                                         "mixed")),
    ):
        start = time.perf_counter()
        graphs[name] = make()
        print(f"  quantised with {name} ({tag} calibration, {len(calibration)} crops) in "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    return graphs


def openvino_int8_runner(path: Path, threads: int, batch: int):
    """The ``openvino-int8`` backend on the already quantised ``path``, with the streams ``auto``
    gives ``batch`` images."""
    from omnireid.inference.runtime import make_runner, stream_count

    return make_runner("openvino-int8", path, SIZE, num_threads=threads,
                       streams=stream_count(threads, batch, "openvino-int8"))


def speed(args) -> None:
    from omnireid.inference.accuracy import cosine_rows
    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.quantize import calibration_batch
    from omnireid.inference.runtime import make_runner

    model, x = model_and_batch(args)
    folder = Path(tempfile.mkdtemp(prefix="bench-int8-nncf-"))
    fp32 = export_onnx(model, folder / "model.onnx", SIZE)
    calib = calibration_batch(None, SIZE, IMAGENET_MEAN, IMAGENET_STD)
    print(machine_line(args), flush=True)
    graphs = int8_graphs(fp32, folder, calib, "synthetic")
    runners = {"onnxruntime-int8, onnxruntime quantiser":
               make_runner("onnxruntime-int8", graphs["onnxruntime quantiser, minmax ranges"], SIZE,
                           num_threads=args.threads)}
    for name, path in graphs.items():
        runners[f"openvino-int8, {name}"] = openvino_int8_runner(path, args.threads, args.batch)
    reference = make_runner("onnxruntime", fp32, SIZE, num_threads=args.threads)(x)
    for name, run in runners.items():
        cos = float(cosine_rows(run(x), reference).mean())
        print(f"  {name:55s} mean cosine to fp32 {cos:.5f}", flush=True)
    for rep in range(args.repeats):
        times = time_interleaved(runners, x, rounds=args.rounds, warmup=2)
        print(f"run {rep + 1}: " + "; ".join(f"{n} {args.batch / statistics.median(t):.1f} img/s"
                                            for n, t in times.items()), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


def profile(args) -> None:
    """OpenVINO's per-layer counters for each int8 model (as ``openvino-int8`` compiles it, one
    stream): milliseconds per call by layer type and the precision it ran in, mean of 5 calls."""
    import collections

    import openvino as ov

    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.quantize import calibration_batch
    from omnireid.inference.runtime import cpu_has_bf16

    model, x = model_and_batch(args)
    folder = Path(tempfile.mkdtemp(prefix="bench-int8-nncf-profile-"))
    fp32 = export_onnx(model, folder / "model.onnx", SIZE)
    graphs = int8_graphs(fp32, folder, calibration_batch(None, SIZE, IMAGENET_MEAN, IMAGENET_STD),
                         "synthetic")
    print(machine_line(args), flush=True)
    calls = 5
    for name, path in graphs.items():
        compiled = ov.Core().compile_model(str(path), "CPU", {
            "PERF_COUNT": True, "INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": "bf16" if cpu_has_bf16() else "f32"})
        request = compiled.create_infer_request()
        for _ in range(3):
            request.infer({0: x})
        ms, count = collections.Counter(), collections.Counter()
        for _ in range(calls):
            request.infer({0: x})
            for layer in request.profiling_info:
                if layer.status.name != "EXECUTED":
                    continue
                key = f"{layer.node_type} ({layer.exec_type.rsplit('_', 1)[-1]})"
                ms[key] += layer.real_time.total_seconds() * 1000 / calls
                count[key] += 1
        print(f"{name}: {sum(ms.values()):.1f} ms per call")
        for key, value in ms.most_common(10):
            print(f"  {key:36s} {value:7.2f} ms  {count[key] // calls:4d} layers")


def accuracy(args) -> None:
    import bench_inference as bench  # a sibling script: the crops and the ranking
    import torch

    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.quantize import calibration_batch
    from omnireid.inference.runtime import make_runner
    from omnireid.models import create_model, load_weights
    torch.set_num_threads(args.threads)
    compat = Path(os.environ.get("OMNIREID_COMPAT_DIR", "/work/shared/compat"))
    state = torch.load(compat / "weights" / "osnet_x0_25_msmt17.pth", map_location="cpu",
                       weights_only=True)
    model = create_model("osnet_x0_25").eval()
    load_weights(model, {k: v for k, v in state.items() if not k.startswith("classifier.")})
    folder = Path(tempfile.mkdtemp(prefix="int8-nncf-accuracy-"))
    fp32 = export_onnx(model, folder / "model.onnx", SIZE)
    calibrations = {
        "synthetic": calibration_batch(None, SIZE, IMAGENET_MEAN, IMAGENET_STD),
        "MOT17": calibration_batch(bench.mot17_crops(compat), SIZE, IMAGENET_MEAN, IMAGENET_STD),
    }
    runners = {"onnxruntime (fp32)": make_runner("onnxruntime", fp32, SIZE,
                                                 num_threads=args.threads)}
    for tag, calib in calibrations.items():
        for name, path in int8_graphs(fp32, folder, calib, tag, estimators=True).items():
            runners[f"openvino-int8, {name}, {tag} calibration"] = openvino_int8_runner(
                path, args.threads, 64)
    result = bench.rank_on_crops(bench.compat_crops(compat), runners)
    bench.print_rank_table(result, "onnxruntime (fp32)", args.threads)


def main() -> None:
    p = ab_parser(__doc__, repeats=2)
    p.add_argument("--accuracy", action="store_true", help="also measure on the real crops")
    p.add_argument("--accuracy-only", action="store_true", help="only measure on the real crops")
    p.add_argument("--profile", action="store_true",
                   help="only print OpenVINO's per-layer times of each int8 model")
    args = p.parse_args()
    if args.profile:
        profile(args)
        return
    if not args.accuracy_only:
        speed(args)
    if args.accuracy or args.accuracy_only:
        accuracy(args)


if __name__ == "__main__":
    main()
