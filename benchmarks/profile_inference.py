"""Where the time goes in the bf16 (and int8) inference paths, and what torch.compile changes.

Sections (each can be skipped):

* ``torch``: ``torch.profiler`` table of the PyTorch ``fused`` (fp32) and ``bf16`` runners: time
  per operator, so layout conversions (``aten::copy_``/``to``), the gate's pooling and
  elementwise work can be told from the convolutions.
* ``onednn``: the oneDNN primitives the PyTorch bf16 runner executes (``ONEDNN_VERBOSE``, run in
  a child process): implementation name (e.g. ``brg_conv_fwd:avx512_core_bf16``,
  ``jit_dw:avx512_core_bf16``) and time per kind of convolution (dense 1x1, depthwise 3x3, other)
  and for reorders (layout conversions).
* ``openvino``: OpenVINO's per-layer performance counters for ``openvino-bf16`` and
  ``openvino-int8`` (its float operations in fp32 and in bf16): time per layer type and kernel
  (``exec_type``), and the share spent in ``Reorder``/``Convert`` layers.
* ``compile``: ``torch.compile`` (inductor, ``freezing=True``) of the fused model in fp32 and
  bf16 against the ``fused`` and ``bf16`` runners, interleaved: compile time and images/s.

    python benchmarks/profile_inference.py --model osnet_x1_0 --batch 16 --threads 2
    python benchmarks/profile_inference.py --sections compile --batch 16
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SIZE = (256, 128)
REPEATS = 5


def build(model_name: str):
    from omnireid.models import create_model

    torch.manual_seed(0)
    return create_model(model_name).eval()


def torch_profile(model, x: np.ndarray, top: int) -> dict:
    from torch.profiler import ProfilerActivity, profile

    from omnireid.inference.runtime import make_runner

    out = {}
    for backend in ("fused", "bf16"):
        run = make_runner(backend, model, SIZE)
        for _ in range(3):
            run(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                run(x)
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events)
        rows = [(e.key, e.self_cpu_time_total / total, e.count // 3) for e in events[:top]]
        out[backend] = rows
        print(f"\n[torch profiler] {backend}: self CPU time by operator (3 calls, batch {len(x)})")
        for key, share, count in rows:
            print(f"  {key:48s} {100 * share:5.1f} %  {count:5d} calls/batch")
    return out


def onednn_kernels(model_name: str, batch: int, threads: int) -> dict:
    """Re-runs this script in a child with ONEDNN_VERBOSE=1 and sums the primitive times."""
    env = dict(os.environ, ONEDNN_VERBOSE="1", OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, "--child-bf16", "--model", model_name, "--batch", str(batch),
           "--threads", str(threads)]
    text = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    # onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx512_core_bf16,...,0.123
    # The child runs the batch REPEATS times; each primitive counts with its fastest run, so a
    # moment when another job took the core does not land on one layer.
    calls: list[list[tuple[str, str, float]]] = []
    for line in text.splitlines():
        if line.startswith("MEASURE"):
            calls.append([])
            continue
        if not calls or ",exec," not in line:
            continue
        parts = line.split(",")
        try:
            ms = float(parts[-1])
        except ValueError:
            continue
        kind, impl = parts[5], parts[6]
        if kind == "convolution":
            shape = parts[-2]
            dw = re.match(r"g(\d+)mb", shape)
            kernel = re.search(r"kh(\d+)", shape)
            what = ("depthwise" if dw and int(dw.group(1)) > 1 else
                    "1x1" if kernel is None or kernel.group(1) == "1" else "kxk dense (stem)")
            kind = f"convolution {what}"
        calls[-1].append((kind, impl, ms))
    n = min(len(c) for c in calls)
    groups: dict[str, float] = collections.defaultdict(float)
    impls: dict[str, float] = collections.defaultdict(float)
    for j in range(n):
        kind, impl, _ = calls[0][j]
        ms = min(c[j][2] for c in calls)
        groups[kind] += ms
        impls[f"{kind}: {impl}"] += ms
    total = sum(groups.values()) or 1.0
    print(f"\n[oneDNN] PyTorch bf16 runner, batch {batch}: {total:.1f} ms in oneDNN primitives "
          f"per batch (fastest of {len(calls)} runs each); by kind")
    for k, v in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"  {k:40s} {100 * v / total:5.1f} %")
    print("  by implementation:")
    for k, v in sorted(impls.items(), key=lambda kv: -kv[1])[:12]:
        print(f"    {k:60s} {100 * v / total:5.1f} %")
    return {"total_ms": total, "by_kind": {k: v / total for k, v in groups.items()},
            "by_impl": {k: v / total for k, v in impls.items()}}


def child_bf16(model_name: str, batch: int, threads: int) -> None:
    from omnireid.inference.runtime import make_runner

    torch.set_num_threads(threads)
    model = build(model_name)
    run = make_runner("bf16", model, SIZE)
    x = np.random.default_rng(0).standard_normal((batch, 3, *SIZE)).astype(np.float32)
    for _ in range(3):
        run(x)
    for _ in range(REPEATS):
        print("MEASURE", flush=True)
        run(x)
        sys.stdout.flush()


def openvino_counters(model, x: np.ndarray, threads: int, top: int) -> dict:
    from omnireid.inference.export import export_onnx
    from omnireid.inference.quantize import calibration_batch, quantize_onnx_int8
    from omnireid.inference.runtime import openvino_core

    tmp = Path(tempfile.mkdtemp(prefix="profile_ov_"))
    fp32 = export_onnx(model, tmp / "model.onnx", SIZE)
    from omnireid.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD

    int8 = quantize_onnx_int8(fp32, tmp / "int8.onnx",
                              calibration_batch(None, SIZE, IMAGENET_MEAN, IMAGENET_STD))
    out = {}
    core = openvino_core()  # the process's one Core (see omnireid.inference.runtime.openvino_core)
    for name, path, precision in (("openvino-bf16", fp32, "bf16"),
                                  ("openvino-int8, float ops fp32", int8, "f32"),
                                  ("openvino-int8, float ops bf16 (as the runner on bf16 CPUs)", int8, "bf16"),
                                  ("openvino (fp32)", fp32, "f32")):
        compiled = core.compile_model(str(path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision, "PERF_COUNT": True})
        req = compiled.create_infer_request()
        for _ in range(3):
            req.infer({0: x})
        req.infer({0: x})
        by_type: dict[str, float] = collections.defaultdict(float)
        by_exec: dict[str, float] = collections.defaultdict(float)
        for info in req.get_profiling_info():
            us = info.real_time.total_seconds() * 1e6
            by_type[info.node_type] += us
            by_exec[f"{info.node_type}: {info.exec_type}"] += us
        total = sum(by_type.values()) or 1.0
        print(f"\n[OpenVINO] {name}, batch {len(x)}: time by layer type "
              f"(total {total / 1e3:.1f} ms)")
        for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])[:top]:
            print(f"  {k:40s} {100 * v / total:5.1f} %")
        print("  by kernel:")
        for k, v in sorted(by_exec.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {k:60s} {100 * v / total:5.1f} %")
        out[name] = {"total_ms": total / 1e3, "by_type": {k: v / total for k, v in by_type.items()},
                     "by_exec": {k: v / total for k, v in by_exec.items()}}
    return out


def compile_paths(model, x: np.ndarray, rounds: int) -> dict:
    """torch.compile (inductor, freezing) of the fused model in fp32 and bf16 vs the runners."""
    import torch._inductor.config as inductor_config

    from omnireid.inference.bench import time_interleaved
    from omnireid.inference.fuse import EmbeddingModel, optimize_for_inference
    from omnireid.inference.runtime import make_runner

    inductor_config.freezing = True
    runners = {"fused": make_runner("fused", model, SIZE), "bf16": make_runner("bf16", model, SIZE)}
    mb = runners["fused"].micro_batch
    compile_s = {}
    for dtype, name in ((torch.float32, "compile fp32"), (torch.bfloat16, "compile bf16")):
        fast = EmbeddingModel(optimize_for_inference(model)).to(dtype).eval()
        compiled = torch.compile(fast, dynamic=False)

        def run(a, compiled=compiled, dtype=dtype):
            with torch.inference_mode():
                t = torch.from_numpy(a).to(dtype).contiguous(memory_format=torch.channels_last)
                return torch.cat([compiled(t[i:i + mb]).float() for i in range(0, len(t), mb)]
                                 ).numpy()

        t = time.perf_counter()
        run(x)  # compiles for the micro-batch shape (and the tail shape, if any)
        compile_s[name] = time.perf_counter() - t
        runners[name] = run
        print(f"  {name}: first call (compilation) {compile_s[name]:.1f} s")
    times = time_interleaved(runners, x, rounds=rounds, warmup=2)
    ref = runners["fused"](x)
    out = {}
    print(f"\n[torch.compile] batch {len(x)}, micro-batches of {mb}")
    for name, t in times.items():
        ips = len(x) / statistics.median(t)
        diff = float(np.abs(runners[name](x) - ref).max())
        out[name] = {"images_per_s": ips, "compile_s": compile_s.get(name), "max_abs_diff": diff}
        print(f"  {name:14s} {ips:8.1f} img/s  max|diff| to fused {diff:.1e}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="osnet_x1_0")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--sections", default="torch,onednn,openvino",
                   help="comma-separated: torch, onednn, openvino, compile")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--child-bf16", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child_bf16:
        child_bf16(a.model, a.batch, a.threads)
        return
    torch.set_num_threads(a.threads)
    model = build(a.model)
    x = np.random.default_rng(0).standard_normal((a.batch, 3, *SIZE)).astype(np.float32)
    print(f"{a.model}, batch {a.batch}, {a.threads} threads, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    result: dict = {"model": a.model, "batch": a.batch, "threads": a.threads,
                    "load_average": os.getloadavg()}
    sections = a.sections.split(",")
    if "torch" in sections:
        result["torch"] = torch_profile(model, x, a.top)
    if "onednn" in sections:
        result["onednn"] = onednn_kernels(a.model, a.batch, a.threads)
    if "openvino" in sections:
        result["openvino"] = openvino_counters(model, x, a.threads, a.top)
    if "compile" in sections:
        result["compile"] = compile_paths(model, x, a.rounds)
    result["load_average_end"] = os.getloadavg()
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
