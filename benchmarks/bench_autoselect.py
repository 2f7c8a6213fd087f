"""What ``backend="auto"`` costs the first time (no cached decision) and once cached.

Each measurement runs in a fresh child process with an empty cache folder: the child builds the
model (random weights: the decision's cost does not depend on them), calls
``select_backend`` once (the first-time decision) and once more (the cached one), and reports
wall and CPU seconds (``time.process_time``: all threads of the process), split by phase:
ONNX export, ONNX Runtime session, OpenVINO compile, TorchScript freezing of ``fused``, int8
quantisation, the exactness check and the timing rounds.

``--compare-src`` names another omnireid source tree (e.g. a checkout of an earlier version);
its children run with that tree first on ``PYTHONPATH``, interleaved with this one's, round
after round, so both see the same machine load. The CPU model and the load average
(``/proc/loadavg``) before and after are printed: on a shared machine the CPU seconds are the
steadier figure.

Examples::

    python benchmarks/bench_autoselect.py
    python benchmarks/bench_autoselect.py --compare-src ../omnireid-main/src --rounds 2 \\
        --models osnet_x1_0 osnet_x0_25 --batch-sizes 16 64 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THIS_SRC = HERE.parent / "src"

PHASES = [  # (module, attribute, label); what is missing in a tree is left out
    ("omnireid.inference.autoselect", "export_onnx", "onnx export"),
    ("omnireid.inference.autoselect", "quantize_onnx_int8", "int8 quantisation"),
    ("omnireid.inference.quantize", "activation_ranges", "int8: activation ranges (within it)"),
    ("omnireid.inference.runtime", "OrtRunner", "onnxruntime session"),
    ("omnireid.inference.runtime", "OpenVINORunner", "openvino compile"),
    ("omnireid.inference.runtime", "freeze_for_cpu", "fused: trace + freeze"),
    ("omnireid.inference.runtime", "auto_micro_batch", "fused: micro-batch probe"),
    ("omnireid.inference.autoselect", "_check_candidates", "exactness check / gates"),  # before
    ("omnireid.inference.autoselect", "_check_exact", "exactness check"),
    ("omnireid.inference.autoselect", "_choose", "accuracy gates"),
    ("omnireid.inference.autoselect", "measure_throughput", "timing rounds"),
]


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def child(args: argparse.Namespace) -> None:
    """One first-time and one cached decision; prints one JSON line."""
    import importlib

    import torch

    torch.set_num_threads(args.threads)
    from omnireid.inference import autoselect
    from omnireid.models import create_model

    phases: dict[str, list[float]] = {}

    def wrap(module, attr: str, label: str) -> None:
        original = getattr(module, attr)

        def timed(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return original(*a, **k)
            finally:
                total = phases.setdefault(label, [0.0, 0.0])
                total[0] += time.perf_counter() - w
                total[1] += time.process_time() - c

        setattr(module, attr, timed)

    for mod_name, attr, label in PHASES:
        module = importlib.import_module(mod_name)
        if hasattr(module, attr):
            wrap(module, attr, label)
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    size = tuple(args.size)
    with tempfile.TemporaryDirectory() as cache:
        w, c = time.perf_counter(), time.process_time()
        first = autoselect.select_backend(model, size, args.batch, args.precision, cache_dir=cache)
        first_wall, first_cpu = time.perf_counter() - w, time.process_time() - c
        w, c = time.perf_counter(), time.process_time()
        again = autoselect.select_backend(model, size, args.batch, args.precision, cache_dir=cache)
        cached_wall, cached_cpu = time.perf_counter() - w, time.process_time() - c
    print(json.dumps({
        "omnireid": autoselect.__file__, "chosen": first.backend, "cached_ok": again.from_cache,
        "first_wall": first_wall, "first_cpu": first_cpu,
        "cached_wall": cached_wall, "cached_cpu": cached_cpu,
        "candidates": {c.backend: round(c.images_per_s, 1) for c in first.candidates},
        "phases": phases,
    }))


def run_child(src: Path, model: str, batch: int, threads: int, args) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [sys.executable, __file__, "--child", "--model", model, "--batch", str(batch),
           "--threads", str(threads), "--precision", args.precision,
           "--size", str(args.size[0]), str(args.size[1])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({src}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["osnet_x1_0", "osnet_x0_25"])
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 64])
    p.add_argument("--threads", nargs="+", type=int, default=[1])
    p.add_argument("--precision", default="fp32")
    p.add_argument("--size", nargs=2, type=int, default=[256, 128])
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--compare-src", type=Path, default=None,
                   help="another omnireid source tree, measured interleaved as the baseline")
    p.add_argument("--json", type=Path, default=None, help="also write every measurement here")
    # internal: one measurement in this process
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.threads = args.threads[0]
        return child(args)

    # here, not at the top: a child process runs with another tree's omnireid, which may lack it
    from omnireid.inference.autoselect import cpu_signature

    trees = {"this": THIS_SRC}
    if args.compare_src is not None:
        trees = {"baseline": args.compare_src.resolve(), "this": THIS_SRC}
    print(f"CPU: {cpu_signature()['name']} ({os.cpu_count()} CPUs); load before: {load()}")
    print("trees: " + ", ".join(f"{k} = {v}" for k, v in trees.items()))
    results: dict[tuple, list[dict]] = {}
    for r in range(args.rounds):
        for model in args.models:
            for batch in args.batch_sizes:
                for threads in args.threads:
                    order = list(trees) if r % 2 == 0 else list(reversed(trees))
                    for label in order:
                        res = run_child(trees[label], model, batch, threads, args)
                        res["load"] = load()
                        results.setdefault((model, batch, threads, label), []).append(res)
                        print(f"  round {r + 1} {model} b{batch} t{threads} {label}: "
                              f"first {res['first_wall']:.1f} s wall / {res['first_cpu']:.1f} s "
                              f"CPU -> {res['chosen']}; cached {res['cached_wall']:.2f} s "
                              f"(load {res['load']})", flush=True)
    print(f"load after: {load()}")
    print(f"\nprecision {args.precision}, {args.size[0]}x{args.size[1]}, medians over "
          f"{args.rounds} round(s); seconds wall / CPU")
    head = "| model | batch | threads | tree | first-time | cached | chosen |"
    if len(trees) > 1:
        head += " first-time CPU vs baseline |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for (model, batch, threads, label), runs in results.items():
        fw = statistics.median(x["first_wall"] for x in runs)
        fc = statistics.median(x["first_cpu"] for x in runs)
        cw = statistics.median(x["cached_wall"] for x in runs)
        cc = statistics.median(x["cached_cpu"] for x in runs)
        chosen = "/".join(sorted({x["chosen"] for x in runs}))
        row = (f"| {model} | {batch} | {threads} | {label} | {fw:.1f} / {fc:.1f} | "
               f"{cw:.2f} / {cc:.2f} | {chosen} |")
        if len(trees) > 1:
            base = results.get((model, batch, threads, "baseline"))
            ratio = fc / statistics.median(x["first_cpu"] for x in base) if base else float("nan")
            row += f" {ratio:.2f}x |"
        print(row)
    print("\nphases of the first-time decision (median wall / CPU s)")
    for key, runs in results.items():
        names = sorted({n for x in runs for n in x["phases"]})
        parts = []
        for n in names:
            w = statistics.median(x["phases"].get(n, [0.0, 0.0])[0] for x in runs)
            c = statistics.median(x["phases"].get(n, [0.0, 0.0])[1] for x in runs)
            parts.append(f"{n} {w:.2f}/{c:.2f}")
        print(f"  {' '.join(map(str, key))}: " + "; ".join(parts))
    if args.json:
        args.json.write_text(json.dumps(
            {"cpu": cpu_signature()["name"], "results": [{"case": list(k), "runs": v}
                                             for k, v in results.items()]}, indent=1))


if __name__ == "__main__":
    main()
