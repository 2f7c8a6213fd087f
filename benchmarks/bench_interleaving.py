"""What a runtime's spinning worker threads do to the next call of another runtime.

Two runners (default ``onnxruntime-int8`` then ``openvino-int8``, built from the same quantised
graph) are called one after the other, on the same seeded random batch, in rounds. Each mode
changes only what happens before a timed call:

* ``alternate``: nothing; every timed call directly follows a call of the other runner (how
  :func:`omnireid.inference.bench.time_interleaved` and ``backend="auto"``'s measurement timed
  before they settled each runner);
* ``pause-10ms``, ``pause-100ms``: the thread sleeps that long first;
* ``settle``: one untimed call of the same runner first (what both timers do now);
* ``no-spin``: as ``alternate``, with ONNX Runtime's ``session.intra_op.allow_spinning`` off.

Then each runner alone, ``--calls`` calls in a row, at the benchmark's batch and at batch 1, for
ONNX Runtime with spinning on and off: what turning spinning off costs a process that runs
nothing else.

    python benchmarks/bench_interleaving.py --model osnet_x1_0 --batch 16 --threads 2
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from unittest import mock

from _ab_setup import ab_parser, exported_graph, machine_line, model_and_batch, path_runners


def _ort_runner(path: Path, threads: int, spin: bool):
    """The library's ONNX Runtime runner, its spinning set through ``OMNIREID_ORT_SPIN``."""
    from omnireid.inference.runtime import ORT_SPIN_ENV, OrtRunner

    with mock.patch.dict(os.environ, {ORT_SPIN_ENV: "1" if spin else "0"}):
        return OrtRunner(path, threads)


def _rate(times: list[float], batch: int) -> float:
    return batch / statistics.median(times)


def main() -> None:
    p = ab_parser(__doc__, repeats=2)
    p.add_argument("--first", default="onnxruntime-int8")
    p.add_argument("--second", default="openvino-int8")
    p.add_argument("--calls", type=int, default=10)
    args = p.parse_args()

    model, x = model_and_batch(args)
    # one exported (and, for int8 paths, quantised) graph that both runners read
    graph = exported_graph(model, args.first.endswith("-int8"), "bench-interleaving-")
    runners = path_runners((args.first, args.second), graph, args)
    x1 = x[:1].copy()
    print(machine_line(args) + f"; {args.first} then {args.second}")

    def alternate(pair: dict, before) -> dict[str, float]:
        for run in pair.values():
            run(x)
        times: dict[str, list[float]] = {n: [] for n in pair}
        for _ in range(args.rounds):
            for name, run in pair.items():
                before(run)
                t = time.perf_counter()
                run(x)
                times[name].append(time.perf_counter() - t)
        return {n: _rate(t, args.batch) for n, t in times.items()}

    no_spin = dict(runners)
    if args.first.startswith("onnxruntime"):
        no_spin[args.first] = _ort_runner(graph, args.threads, spin=False)
    modes = {
        "alternate": (runners, lambda run: None),
        "pause-10ms": (runners, lambda run: time.sleep(0.01)),
        "pause-100ms": (runners, lambda run: time.sleep(0.1)),
        "settle": (runners, lambda run: run(x)),
        "no-spin": (no_spin, lambda run: None),
    }
    print(f"\n{'mode':12s} {args.first + ' img/s':>24s} {args.second + ' img/s':>24s}")
    for rep in range(args.repeats):
        for mode, (pair, before) in modes.items():
            r = alternate(pair, before)
            print(f"{mode:12s} {r[args.first]:24.1f} {r[args.second]:24.1f}   (run {rep + 1})",
                  flush=True)

    if args.first.startswith("onnxruntime"):
        print(f"\n{args.first} alone, {args.calls} calls in a row (img/s):")
        for rep in range(args.repeats):
            for spin in (True, False):
                run = _ort_runner(graph, args.threads, spin)
                cells = []
                for batch in (x, x1):
                    for _ in range(3):
                        run(batch)
                    times = []
                    for _ in range(args.calls):
                        t = time.perf_counter()
                        run(batch)
                        times.append(time.perf_counter() - t)
                    cells.append(f"batch {len(batch)}: {_rate(times, len(batch)):6.1f}")
                print(f"  spinning {'on ' if spin else 'off'}  " + "   ".join(cells)
                      + f"   (run {rep + 1})", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
