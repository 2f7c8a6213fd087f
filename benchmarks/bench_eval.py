"""Rank metrics at Market-1501 scale: omnireid vs torchreid's compiled and Python evaluators.

One distance matrix (3368 queries x 19732 gallery, squared euclidean between 512-d synthetic
features with Market-1501's identity/camera statistics, see market_like.py) is saved once; each
evaluator reads the same file. torchreid runs in its own environment (``--torchreid-python``)
as a subprocess; its compiled ``rank_cy`` must be built there (see benchmarks/README.md).
Times are the best of ``--repeats`` runs (the Python evaluator: one run). A second, tie-heavy
matrix (distances rounded to 2 decimals) checks that ties are broken identically.

usage: python benchmarks/bench_eval.py [--torchreid-python PATH] [--repeats 3]
                                       [--skip-python-evaluator] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from market_like import make_market_like  # noqa: E402


def best_of(fn, repeats):
    """(best wall seconds, best CPU seconds, result)."""
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(times), min(cpu), out


def compare(label, path, ids, tr_python, repeats, python_evaluator):
    from omnireid.evaluation import evaluate_rank

    z = np.load(path)
    args = (z["distmat"], *ids)
    t32, c32, r32 = best_of(lambda: evaluate_rank(*args), repeats)
    t64, c64, r64 = best_of(lambda: evaluate_rank(*args, arithmetic="float64"), repeats)
    out_json = path.with_suffix(".torchreid.json")
    cmd = [tr_python, str(HERE / "_torchreid_baseline.py"), "rank", str(path), str(out_json)]
    if python_evaluator:
        cmd.append("--python-evaluator")
    subprocess.run(cmd, check=True, env=dict(os.environ, BENCH_REPEATS=str(repeats)))
    theirs = json.loads(out_json.read_text())
    row = {"case": label, "ours_float32_s": t32, "ours_float64_s": t64,
           "ours_float32_cpu_s": c32, "ours_float64_cpu_s": c64,
           "mAP_float32": r32.mAP, "mAP_float64": r64.mAP, "rank1": r32.rank(1), "mINP": r32.mINP}
    if "cython" in theirs:
        cy = theirs["cython"]
        row.update(
            cython_s=cy["seconds"],
            cython_cpu_s=cy["cpu_seconds"],
            ratio_vs_cython=t32 / cy["seconds"],
            cpu_ratio_vs_cython=c32 / cy["cpu_seconds"],
            identical_to_cython=bool(np.array_equal(np.float32(cy["cmc"]), r32.cmc) and cy["mAP"] == r32.mAP),
        )
    else:
        print("warning: torchreid's compiled evaluator is not built in that environment")
    if "python" in theirs:
        py = theirs["python"]
        row.update(
            python_s=py["seconds"],
            python_cpu_s=py["cpu_seconds"],
            ratio_vs_python=t64 / py["seconds"],
            identical_to_python=bool(np.array_equal(np.float32(py["cmc"]), r64.cmc) and py["mAP"] == r64.mAP),
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torchreid-python", default=os.environ.get(
        "OMNIREID_TORCHREID_PYTHON", "/work/venv-tr-eval/bin/python"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-python-evaluator", action="store_true")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    from omnireid.evaluation import compute_distance_matrix

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_eval_"))
    work.mkdir(parents=True, exist_ok=True)
    s = make_market_like()
    ids = (s.q_pids, s.g_pids, s.q_camids, s.g_camids)
    d = compute_distance_matrix(s.q_feats, s.g_feats, "euclidean")
    np.savez(work / "market.npz", distmat=d, q_pids=s.q_pids, g_pids=s.g_pids,
             q_camids=s.q_camids, g_camids=s.g_camids)
    tied = np.round(d / d.max(), 2).astype(np.float32)  # many exact ties
    np.savez(work / "ties.npz", distmat=tied, q_pids=s.q_pids, g_pids=s.g_pids,
             q_camids=s.q_camids, g_camids=s.g_camids)

    rows = [
        compare("market 3368x19732", work / "market.npz", ids, args.torchreid_python, args.repeats,
                not args.skip_python_evaluator),
        compare("ties (2 decimals)", work / "ties.npz", ids, args.torchreid_python, args.repeats, False),
    ]
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cpus", "python": platform.python_version(),
              "numpy": np.__version__, "rows": rows}
    print(json.dumps(report, indent=2))
    for r in rows:
        if "cython_s" in r:
            print(f"{r['case']}: ours {r['ours_float32_s']:.3f} s vs torchreid compiled {r['cython_s']:.3f} s "
                  f"-> {r['ratio_vs_cython']:.3f} of its time, CPU time {r['cpu_ratio_vs_cython']:.3f} "
                  f"(goal <= 0.333); identical: {r['identical_to_cython']}")
        if "python_s" in r:
            print(f"{r['case']}: ours (float64) {r['ours_float64_s']:.3f} s vs torchreid Python "
                  f"{r['python_s']:.1f} s; identical: {r['identical_to_python']}")
    (work / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
