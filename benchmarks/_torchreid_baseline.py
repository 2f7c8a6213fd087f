"""Runs torchreid's own evaluation code in torchreid's environment (called by bench_*.py).

Only numpy is needed there: torchreid's package __init__ files pull in torch, so the modules
``torchreid.reid.metrics.rank`` (with its compiled ``rank_cy`` when built) and
``torchreid.reid.utils.rerank`` are loaded under empty parent packages. Their code runs as shipped.

usage: python _torchreid_baseline.py rank INPUT.npz OUTPUT.json [--python-evaluator]
       python _torchreid_baseline.py rerank INPUT_DIR OUTPUT.npy OUTPUT.json
"""

import importlib
import json
import os
import resource
import sys
import time
import types

import numpy as np


def load(name):
    base = None
    for entry in sys.path:
        if os.path.isdir(os.path.join(entry, "torchreid", "reid")):
            base = os.path.join(entry, "torchreid")
            break
    if base is None:
        raise SystemExit("torchreid is not installed in this environment")
    for pkg, sub in [("torchreid", ""), ("torchreid.reid", "reid"),
                     ("torchreid.reid.metrics", "reid/metrics"),
                     ("torchreid.reid.metrics.rank_cylib", "reid/metrics/rank_cylib"),
                     ("torchreid.reid.utils", "reid/utils")]:
        module = types.ModuleType(pkg)
        module.__path__ = [os.path.join(base, sub)]
        sys.modules[pkg] = module
    return importlib.import_module(name)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rank(inp, out, python_evaluator):
    import warnings

    warnings.simplefilter("ignore")
    rank_mod = load("torchreid.reid.metrics.rank")
    z = np.load(inp)
    args = (z["distmat"], z["q_pids"], z["g_pids"], z["q_camids"], z["g_camids"])
    result = {"cython_available": bool(rank_mod.IS_CYTHON_AVAI), "numpy": np.__version__}
    if rank_mod.IS_CYTHON_AVAI:
        times, cpu = [], []
        for _ in range(int(os.environ.get("BENCH_REPEATS", "3"))):
            t, c = time.perf_counter(), time.process_time()
            cmc, mAP = rank_mod.evaluate_rank(*args, use_cython=True)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        result["cython"] = {"seconds": min(times), "all_seconds": times, "cpu_seconds": min(cpu),
                            "cmc": [float(c) for c in cmc], "mAP": float(mAP)}
    if python_evaluator:
        t, c = time.perf_counter(), time.process_time()
        cmc, mAP = rank_mod.evaluate_rank(*args, use_cython=False)
        result["python"] = {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
                            "cmc": [float(c) for c in cmc], "mAP": float(mAP)}
    with open(out, "w") as f:
        json.dump(result, f)


def rerank(inp_dir, out_npy, out_json):
    rr = load("torchreid.reid.utils.rerank")
    q_g = np.load(os.path.join(inp_dir, "q_g.npy"))
    q_q = np.load(os.path.join(inp_dir, "q_q.npy"))
    g_g = np.load(os.path.join(inp_dir, "g_g.npy"))
    rss_inputs = peak_rss_mib()
    t, c = time.perf_counter(), time.process_time()
    final = rr.re_ranking(q_g, q_q, g_g)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    np.save(out_npy, final.astype(np.float32))
    with open(out_json, "w") as f:
        json.dump({"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": peak_rss_mib(),
                   "rss_after_loading_inputs_mib": rss_inputs, "numpy": np.__version__}, f)


if __name__ == "__main__":
    if sys.argv[1] == "rank":
        rank(sys.argv[2], sys.argv[3], "--python-evaluator" in sys.argv)
    elif sys.argv[1] == "rerank":
        rerank(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(__doc__)
