"""Where ``openvino-int8`` loses its time, layer shape by layer shape, against the int8 matrix rate.

``omnireid bench`` reports a path's multiply-adds per second as a share of the machine's int8
matrix-product rate (a 2048 x 2048 product, :func:`omnireid.inference.bench.matmul_rates`). For
``openvino-int8`` that share is well under one half. This script says which layers hold it
down. In one process it:

1. measures the fp32, bf16 and int8 matrix rates;
2. compiles the library's int8 graph as ``openvino-int8`` does (float operations in bf16 where the
   CPU has native bf16, one stream, OpenVINO's per-layer counters on) and prints, for each layer
   kind and each convolution shape, milliseconds per call, billions of multiply-adds and their
   rate as a share of the int8 matrix rate (mean of ``--calls`` calls after three warm-up calls);
3. times, interleaved over ``--rounds`` rounds, the eager fp32 model, the library's int8 graph and
   the same graph with its depthwise 3x3 convolutions left unquantised (OpenVINO then runs them in
   bf16, whose depthwise kernel is the faster of the two in the bf16 graph), both with the
   ``openvino-int8`` runner and the streams ``auto`` gives the batch, and prints each
   variant's ratio to eager and the within-round ratio of the two int8 graphs, beside the
   smallest cosine of each graph's embeddings to the fp32 model's.

    python benchmarks/bench_int8_layers.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
from _ab_setup import SIZE, ab_parser, machine_line, model_and_batch, path_runners


def layer_table(compiled, x: np.ndarray, calls: int) -> list[dict]:
    """One row per executed layer of ``compiled``: name, kind (layer type and kernel), input and
    output shapes, milliseconds per call and multiply-adds per call (convolutions and fully
    connected layers; 0 for the others)."""
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    ms: collections.Counter = collections.Counter()
    for _ in range(calls):
        request.infer({0: x})
        for layer in request.profiling_info:
            if layer.status.name == "EXECUTED":
                ms[layer.node_name] += layer.real_time.total_seconds() * 1000 / calls
    rows = []
    for node in compiled.get_runtime_model().get_ordered_ops():
        name = node.get_friendly_name()
        if name not in ms:
            continue
        info = node.get_rt_info()
        layer_type = info["layerType"].astype(str) if "layerType" in info else node.get_type_name()
        kernel = info["primitiveType"].astype(str) if "primitiveType" in info else ""
        shapes = [tuple(node.input(i).get_partial_shape().to_shape())
                  if node.input(i).get_partial_shape().is_static else ()
                  for i in range(node.get_input_size())]
        out = (tuple(node.output(0).get_partial_shape().to_shape())
               if node.get_output_size() and node.output(0).get_partial_shape().is_static else ())
        macs = 0
        if layer_type == "Convolution" and len(shapes) > 1 and out:
            weight = shapes[1]
            # grouped weights are (groups, out/group, in/group, kh, kw); plain ones (out, in, kh, kw)
            per_output = np.prod(weight[2:]) if len(weight) == 5 else np.prod(weight[1:])
            macs = int(np.prod(out) * per_output)
        elif layer_type == "FullyConnected" and out and shapes:
            macs = int(np.prod(out) * shapes[0][-1])
        rows.append({"name": name, "type": layer_type, "kernel": kernel, "inputs": shapes,
                     "output": out, "ms": ms[name], "macs": macs})
    return rows


def kind_of(row: dict) -> str:
    """The layer's role in OSNet, from its kernel and shapes."""
    if row["type"] == "Convolution":
        if "dw" in row["kernel"]:
            weight = row["inputs"][1]
            return "depthwise 3x3" if tuple(weight[-2:]) == (3, 3) else "average pool (as depthwise conv)"
        if row["output"] and row["output"][-1] == 1 and row["output"][-2] == 1:
            return "gate 1x1 (on pooled maps)"
        return "1x1 convolution" if "1x1" in row["kernel"] else "stem convolution"
    if row["type"] == "Eltwise":
        return "eltwise (gate products, sums)"
    if row["type"] == "Reduce":
        return "reduce (gates' means, global pool)"
    return row["type"].lower()


def print_layers(rows: list[dict], int8_rate: float, top: int) -> None:
    total = sum(r["ms"] for r in rows)
    print(f"\nopenvino-int8 by layer kind (sum of layer times {total:.1f} ms per call; "
          f"int8 matrix rate {int8_rate:.0f} GMAC/s)")
    kinds: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0])
    for r in rows:
        k = kinds[kind_of(r)]
        k[0] += r["ms"]
        k[1] += r["macs"]
        k[2] += 1
    for name, (ms, macs, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        rate = macs / 1e9 / (ms / 1e3) if ms and macs else 0.0
        share = f"{rate / int8_rate:6.0%}" if rate else "     -"
        print(f"  {name:36s} {n:4d} layers {ms:7.2f} ms ({ms / total:4.0%})  {macs / 1e9:6.2f} GMAC"
              f"  {rate:6.1f} GMAC/s {share} of the int8 rate")
    shapes: dict[tuple, list[float]] = collections.defaultdict(lambda: [0.0, 0, 0])
    for r in rows:
        if r["macs"] and r["type"] == "Convolution":
            s = shapes[(kind_of(r), r["inputs"][1], r["output"])]
            s[0] += r["ms"]
            s[1] += r["macs"]
            s[2] += 1
    print(f"\n  the {top} convolution shapes that take the most time (weight shape, output shape):")
    for (kind, weight, out), (ms, macs, n) in sorted(shapes.items(), key=lambda kv: -kv[1][0])[:top]:
        rate = macs / 1e9 / (ms / 1e3)
        print(f"  {kind:22s} w={str(list(weight)):22s} out={str(list(out)):20s} x{n:3d} {ms:6.2f} ms"
              f"  {rate:6.1f} GMAC/s {rate / int8_rate:5.0%}")


def depthwise_excluded_graph(fp32: Path, out: Path, calibration: np.ndarray) -> Path:
    """The library's quantisation of ``fp32`` with every 3x3 depthwise convolution left in float."""
    import onnx
    import onnxruntime.quantization as oq

    from omnireid.inference.quantize import quantize_onnx_int8

    quantize_static = oq.quantize_static

    def excluding(model_input, *args, **kwargs):
        names = []
        for node in onnx.load(str(model_input)).graph.node:
            attrs = {a.name: a for a in node.attribute}
            if (node.op_type == "Conv" and "group" in attrs and attrs["group"].i > 1
                    and list(attrs["kernel_shape"].ints) == [3, 3]):
                names.append(node.name)
        print(f"  left in float: {len(names)} depthwise 3x3 convolutions", flush=True)
        return quantize_static(model_input, *args, nodes_to_exclude=names, **kwargs)

    with mock.patch.object(oq, "quantize_static", excluding):
        return quantize_onnx_int8(fp32, out, calibration)


def main() -> None:
    p = ab_parser(__doc__, repeats=1)
    p.add_argument("--calls", type=int, default=10, help="calls averaged by the layer counters")
    p.add_argument("--top", type=int, default=12, help="convolution shapes listed")
    args = p.parse_args()

    import openvino as ov

    from omnireid.inference.bench import matmul_rates, time_interleaved
    from omnireid.inference.export import export_onnx
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD
    from omnireid.inference.quantize import calibration_batch, quantize_onnx_int8
    from omnireid.inference.runtime import cpu_has_bf16, make_runner

    model, x = model_and_batch(args)
    print(machine_line(args), flush=True)
    rates = matmul_rates()
    print("matrix rates (GMAC/s): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()), flush=True)

    folder = Path(tempfile.mkdtemp(prefix="bench-int8-layers-"))
    fp32 = export_onnx(model, folder / "model.onnx", SIZE)
    calibration = calibration_batch(None, SIZE, IMAGENET_MEAN, IMAGENET_STD)
    graphs = {"openvino-int8": quantize_onnx_int8(fp32, folder / "model-int8.onnx", calibration),
              "int8, depthwise in bf16": depthwise_excluded_graph(fp32, folder / "model-int8-dw.onnx",
                                                                 calibration)}
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": args.threads, "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_PRECISION_HINT": "bf16" if cpu_has_bf16() else "f32"}
    profiled = core.compile_model(str(graphs["openvino-int8"]), "CPU", {**config, "PERF_COUNT": True})
    rows = layer_table(profiled, x, args.calls)
    print_layers(rows, rates["int8"], args.top)
    dense = [r for r in rows if kind_of(r) in ("1x1 convolution", "stem convolution")]
    dense_ms = sum(r["macs"] for r in dense) / 1e9 / rates["int8"] * 1e3
    other_ms = sum(r["ms"] for r in rows if r not in dense)
    del profiled, core

    # timed as the library runs them: the runner of `openvino-int8`, with the streams `auto` gives
    runners = {"eager": make_runner("eager", model, SIZE, num_threads=args.threads)}
    runners.update({name: path_runners(["openvino-int8"], path, args)["openvino-int8"]
                    for name, path in graphs.items()})
    reference = runners["eager"](x)

    def cosine(a: np.ndarray) -> float:
        return float(((a * reference).sum(1) / np.linalg.norm(a, axis=1)
                      / np.linalg.norm(reference, axis=1)).min())

    print("\nsmallest cosine to the fp32 model's embeddings: " + ", ".join(
        f"{name} {cosine(run(x)):.5f}" for name, run in runners.items() if name != "eager"))
    for repeat in range(args.repeats):
        times = time_interleaved(runners, x, rounds=args.rounds)
        median = {name: float(np.median(t)) for name, t in times.items()}
        print(f"\nrepeat {repeat + 1}: median ms per call, and x eager (same run, {args.rounds} rounds)")
        for name, m in median.items():
            print(f"  {name:26s} {m * 1e3:8.1f} ms  {median['eager'] / m:6.2f}x eager")
        target = median["eager"] / 20
        print(f"  20x eager is {target * 1e3:.1f} ms per call. The 1x1 and stem convolutions at the full "
              f"int8 matrix rate would take {dense_ms:.1f} ms, leaving {target * 1e3 - dense_ms:.1f} ms "
              f"for the other layers, which take {other_ms:.1f} ms in the profile above")
        a, b = times["openvino-int8"], times["int8, depthwise in bf16"]
        print("  depthwise in bf16 / openvino-int8 speed, within each round: "
              + " ".join(f"{ta / tb:.2f}" for ta, tb in zip(a, b)))


if __name__ == "__main__":
    main()
