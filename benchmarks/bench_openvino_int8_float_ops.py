"""openvino-int8 with the int8 graph's float operations in fp32 against bf16, interleaved.

Both runners compile the same quantised graph (synthetic calibration) and differ only in
OpenVINO's ``INFERENCE_PRECISION_HINT`` (``f32`` / ``bf16``), which sets the precision of the
operations the graph leaves in float. Timed with :func:`omnireid.inference.bench.time_interleaved`
on one seeded random batch, ``--repeats`` times, at one stream and at one stream per thread.

    python benchmarks/bench_openvino_int8_float_ops.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import os
import statistics

from _ab_setup import ab_parser, exported_graph, machine_line, model_and_batch


def main() -> None:
    args = ab_parser(__doc__, repeats=3).parse_args()

    from omnireid.inference.accuracy import cosine_rows
    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.runtime import OpenVINORunner, cpu_has_bf16

    model, x = model_and_batch(args)
    graph = exported_graph(model, True, "bench-ov-int8-")
    print(machine_line(args, f", native bf16: {cpu_has_bf16()}"))
    for streams in sorted({1, args.threads}):
        runners = {f"float ops {p}": OpenVINORunner(graph, args.threads, bf16=p == "bf16",
                                                    streams=streams) for p in ("fp32", "bf16")}
        a, b = (run(x) for run in runners.values())
        cos = float(cosine_rows(a, b).mean())
        for rep in range(args.repeats):
            t = time_interleaved(runners, x, rounds=args.rounds, warmup=2)
            rates = {n: args.batch / statistics.median(v) for n, v in t.items()}
            print(f"streams {streams}, run {rep + 1}: " + "; ".join(
                f"{n} {r:.1f} img/s" for n, r in rates.items())
                + f"; bf16 / fp32 {rates['float ops bf16'] / rates['float ops fp32']:.2f}x"
                + (f"; mean cosine between them {cos:.5f}" if rep == 0 else ""), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
