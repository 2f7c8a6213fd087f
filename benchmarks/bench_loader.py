"""Training-loader throughput: omnireid vs torchreid on the same files, in the same run.

Both loaders read the same JPEGs (a synthetic domain's training split by default, Market-1501
sized 128x64 crops, or any dataset via --dataset/--root), build 256x128 training batches of 64
(P x K = 16 x 4 identity sampler) with flip + 1.125x translate-crop + random erasing +
normalisation, and use 2 worker processes. Each side runs in its own child process with the same
environment (threads, allocator), alternating omnireid / torchreid for --rounds rounds; the
reported number is the median images/s over rounds, after --warmup batches.

torchreid must be installed in a separate environment (never in the project's):
    python3 -m venv /work/venv-torchreid
    /work/venv-torchreid/bin/pip install torch==2.14.1 torchvision==0.29.1 torchreid==0.2.5 opencv-python-headless

Usage:
    PYTHONPATH=src python benchmarks/bench_loader.py [--torchreid-python /work/venv-torchreid/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))


def run_child(python: str, impl: str, list_path: str, args) -> dict:
    cmd = [python, str(HERE / "_loader_child.py"), "--impl", impl, "--list", list_path,
           "--batches", str(args.batches), "--warmup", str(args.warmup), "--workers", str(args.workers),
           "--batch-size", str(args.batch_size)]
    env = dict(os.environ, PYTHONPATH=str(HERE))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(HERE))
    if out.returncode != 0:
        raise RuntimeError(f"{impl} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="synthetic_a")
    p.add_argument("--root", default=None)
    p.add_argument("--torchreid-python", default="/work/venv-torchreid/bin/python")
    p.add_argument("--reference", choices=["torchreid", "minimal"], default="torchreid",
                   help="'minimal' uses benchmarks/_torchreid_minimal.py when torchreid is unavailable")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()

    from omnireid.data import load_dataset

    ds = load_dataset(args.dataset, args.root)
    samples = [[s.path, s.pid, s.camid] for s in ds.train]
    reference_python = args.torchreid_python if args.reference == "torchreid" else sys.executable
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(samples, f)
        list_path = f.name
    results: dict[str, list[float]] = {"omnireid": [], args.reference: []}
    try:
        for r in range(args.rounds):
            for impl, python in (("omnireid", sys.executable), (args.reference, reference_python)):
                res = run_child(python, impl, list_path, args)
                results[impl].append(res["images_per_s"])
                print(f"round {r + 1} {impl:9s}: {res['images_per_s']:7.1f} images/s  batch {res['batch_shape']}"
                      f"  (torch {res['torch']})", flush=True)
    finally:
        os.unlink(list_path)
    ours, ref = statistics.median(results["omnireid"]), statistics.median(results[args.reference])
    summary = {
        "machine": f"{platform.machine()} {os.cpu_count()} cpus", "python": platform.python_version(),
        "dataset": args.dataset, "images": len(samples), "workers": args.workers, "batch_size": args.batch_size,
        "ld_preload": os.environ.get("LD_PRELOAD", ""), "omnireid_images_per_s": ours,
        f"{args.reference}_images_per_s": ref, "ratio": ours / ref, "rounds": results,
    }
    print(f"median: omnireid {ours:.1f} images/s, {args.reference} {ref:.1f} images/s, ratio {ours / ref:.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
