"""Run the side-by-side benchmarks one after another (``make bench``).

Each script measures omnireid against a reference in the same run and prints ratios; see
benchmarks/README.md for what each needs (the torchreid baselines live in their own virtualenv,
whose interpreter the scripts take as ``--torchreid-python``/``--torchreid-env``). A script that
fails (for instance because that environment is missing) is reported and the others still run.

    python benchmarks/run_all.py            # every benchmark
    python benchmarks/run_all.py --list     # names and one-line descriptions
    python benchmarks/run_all.py bench_eval bench_index
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The long-running experiments (`omnireid reproduce`, calibration) are run by hand: see README.md.
BENCHMARKS = [
    "bench_eval", "bench_rerank", "bench_loader", "bench_train", "bench_inference",
    "bench_index", "bench_nas",
]


def describe(name: str) -> str:
    doc = ast.get_docstring(ast.parse((HERE / f"{name}.py").read_text())) or ""
    return doc.splitlines()[0] if doc else ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args()
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")
    if args.list:
        for name in BENCHMARKS:
            print(f"{name:<16} {describe(name)}")
        return 0
    results = {}
    for name in args.names or BENCHMARKS:
        print(f"\n=== {name}: {describe(name)}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / f"{name}.py")])
        results[name] = (rc, time.perf_counter() - start)
    print("\nbenchmark        status   seconds")
    for name, (rc, seconds) in results.items():
        print(f"{name:<16} {'ok' if rc == 0 else f'rc={rc}':<8} {seconds:7.0f}")
    return 0 if all(rc == 0 for rc, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
