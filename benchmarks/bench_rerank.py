"""k-reciprocal re-ranking at Market-1501 scale: omnireid vs torchreid's ``re_ranking``.

Both run in their own subprocess, so that each peak resident memory (``ru_maxrss``, which
counts everything the process touched: interpreter, libraries, inputs, work) is its own.
torchreid's function takes the three distance matrices, which are prepared here and saved
(its peak includes holding them: its API needs them); omnireid's starts from the features and
computes every distance itself, inside the timed region. Both use the squared euclidean
distance, torchreid's default. Threads: whatever each library uses by default on this machine.

usage: python benchmarks/bench_rerank.py [--torchreid-python PATH] [--num-query 3368]
                                         [--num-gallery 19732] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from market_like import make_market_like  # noqa: E402

OURS = r"""
import json, resource, sys, time
import numpy as np
from omnireid.evaluation.rerank import re_ranking_features
z = np.load(sys.argv[1])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t, c = time.perf_counter(), time.process_time()
final = re_ranking_features(z["q_feats"], z["g_feats"], "euclidean")
seconds, cpu = time.perf_counter() - t, time.process_time() - c
np.save(sys.argv[2], final)
json.dump({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "rss_before_mib": rss0}, open(sys.argv[3], "w"))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torchreid-python", default=os.environ.get(
        "OMNIREID_TORCHREID_PYTHON", "/work/venv-tr-eval/bin/python"))
    parser.add_argument("--num-query", type=int, default=3368)
    parser.add_argument("--num-gallery", type=int, default=19732)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--reuse-baseline", action="store_true",
                        help="keep torchreid's result already in --workdir (its run takes minutes)")
    args = parser.parse_args()

    from omnireid.evaluation import compute_distance_matrix, evaluate_rank

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_rerank_"))
    work.mkdir(parents=True, exist_ok=True)
    scale = args.num_gallery / 19732
    s = make_market_like(num_query=args.num_query, num_gallery=args.num_gallery,
                         num_distractors=int(6617 * scale), num_ids=min(750, args.num_query))
    np.savez(work / "feats.npz", q_feats=s.q_feats, g_feats=s.g_feats)
    print(f"features: query {s.q_feats.shape}, gallery {s.g_feats.shape}; workdir {work}")

    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "src"))
    subprocess.run([sys.executable, "-c", OURS, str(work / "feats.npz"), str(work / "ours.npy"),
                    str(work / "ours.json")], check=True, env=env)
    ours = json.loads((work / "ours.json").read_text())
    print(f"omnireid  : {ours['seconds']:.1f} s, peak RSS {ours['peak_rss_mib']:.0f} MiB")

    q_g = compute_distance_matrix(s.q_feats, s.g_feats)
    if not (args.reuse_baseline and (work / "theirs.json").is_file()):
        np.save(work / "q_g.npy", q_g)
        np.save(work / "q_q.npy", compute_distance_matrix(s.q_feats, s.q_feats))
        np.save(work / "g_g.npy", compute_distance_matrix(s.g_feats, s.g_feats))
        subprocess.run([args.torchreid_python, str(HERE / "_torchreid_baseline.py"), "rerank", str(work),
                        str(work / "theirs.npy"), str(work / "theirs.json")], check=True)
    theirs = json.loads((work / "theirs.json").read_text())
    print(f"torchreid : {theirs['seconds']:.1f} s, peak RSS {theirs['peak_rss_mib']:.0f} MiB "
          f"({theirs['rss_after_loading_inputs_mib']:.0f} MiB after loading its inputs)")

    a, b = np.load(work / "ours.npy"), np.load(work / "theirs.npy")
    ids = (s.q_pids, s.g_pids, s.q_camids, s.g_camids)
    base = evaluate_rank(q_g, *ids)
    ra, rb = evaluate_rank(a, *ids), evaluate_rank(b, *ids)
    report = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
        "python": platform.python_version(), "numpy": np.__version__,
        "shape": [args.num_query, args.num_gallery],
        "ours": ours, "torchreid": theirs,
        "speedup": theirs["seconds"] / ours["seconds"],
        "cpu_time_speedup": theirs["cpu_seconds"] / ours["cpu_seconds"] if "cpu_seconds" in theirs else None,
        "peak_memory_ratio": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
        "max_abs_diff": float(np.abs(a - b).max()),
        "mAP_before": base.mAP, "mAP_ours": ra.mAP, "mAP_torchreid": rb.mAP,
        "rank1_ours": ra.rank(1), "rank1_torchreid": rb.rank(1),
    }
    print(json.dumps(report, indent=2))
    ok = report["speedup"] >= 5 and report["peak_memory_ratio"] <= 0.25 and abs(ra.mAP - rb.mAP) <= 1e-4
    print(f"speedup {report['speedup']:.1f}x (goal >= 5), memory {report['peak_memory_ratio']:.3f} of "
          f"torchreid's (goal <= 0.25), |dmAP| {abs(ra.mAP - rb.mAP):.2e} (goal <= 1e-4): "
          f"{'PASS' if ok else 'FAIL'}")
    (work / "report.json").write_text(json.dumps(report, indent=2))



if __name__ == "__main__":
    main()
