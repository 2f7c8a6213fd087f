"""Does the ranking of two paths depend on how many images a timed call gets?

``backend="auto"`` times its candidates on ``min(batch_size, MEASURE_MAX_BATCH)`` images, with
the streams it would use for the batch size asked for. This script times two paths (default
``onnxruntime-int8`` and ``openvino-int8``, from the same quantised graph) built for
``--batch`` images, interleaved and settled
(:func:`omnireid.inference.bench.time_interleaved`), on calls of each size in ``--probes``.

    python benchmarks/bench_probe_size.py --model osnet_x1_0 --batch 16 --threads 2 --probes 8 16
"""

from __future__ import annotations

import statistics

import numpy as np
from _ab_setup import SIZE, ab_parser, exported_graph, machine_line, model_and_batch, path_runners


def main() -> None:
    p = ab_parser(__doc__, repeats=2)
    p.add_argument("--paths", nargs=2, default=["onnxruntime-int8", "openvino-int8"])
    p.add_argument("--probes", nargs="+", type=int, default=[8, 16])
    args = p.parse_args()

    from omnireid.inference.bench import time_interleaved

    model, _ = model_and_batch(args)
    graph = exported_graph(model, any(p.endswith("-int8") for p in args.paths), "bench-probe-")
    runners = path_runners(args.paths, graph, args)
    print(machine_line(args) + "; streams: " + ", ".join(
        f"{n} {getattr(r, 'streams', 1)}" for n, r in runners.items()))
    for probe in args.probes:
        x = np.random.default_rng(0).standard_normal((probe, 3, *SIZE)).astype(np.float32)
        for rep in range(args.repeats):
            t = time_interleaved(runners, x, rounds=args.rounds, warmup=2)
            print(f"{probe} images a call, run {rep + 1}: " + "; ".join(
                f"{n} {probe / statistics.median(v):.1f} img/s" for n, v in t.items()), flush=True)


if __name__ == "__main__":
    main()
