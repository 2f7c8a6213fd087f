"""Cost of one architecture-search (NAS) step: mixture (all four candidates) vs two-path vs single-path.

Baseline in the same run: a plain OSNet of the same width (what one training step of a normal
model costs). Each variant runs in its own subprocess (same threads, same allocator) so that the
peak resident memory belongs to it alone. Reported per variant:

* ms per training step (forward + backward + Adam step), median of ``--steps`` after a warm-up,
  as wall time and as CPU time of the process (the latter is what to compare on a shared
  machine: other jobs inflate wall time, not the CPU time the step itself needs);
* activation memory: bytes of the tensors autograd saves for the backward pass in one step
  (unique storages, parameters excluded) -- exact and independent of the allocator;
* peak RSS of the subprocess (includes Python, torch and the parameters);
* parameter count.

    python benchmarks/bench_nas.py --batch 32 --size 128x64 --width 0.25 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = ("plain", "single_path", "two_path", "mixture", "single_path+shared", "two_path+shared",
            "mixture+shared")


def measure(variant: str, batch: int, size: tuple[int, int], width: float, steps: int) -> dict:
    import torch

    from omnireid.models import create_model
    from omnireid.models.supernet import build_supernet

    torch.manual_seed(0)
    num_classes = 250
    if variant == "plain":
        model = create_model("osnet", width=width, num_classes=num_classes)
    else:
        mode, _, shared = variant.partition("+")
        model = build_supernet(num_classes, width=width, mode=mode, share_weights=bool(shared))
        model.set_temperature(10.0)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=5e-4)
    x = torch.randn(batch, 3, *size)
    y = torch.randint(0, num_classes, (batch,))
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in param_ptrs:
            saved[s.data_ptr()] = s.nbytes()
        return t

    times, cpu = [], []
    for i in range(steps + 1):
        saved.clear()
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = torch.nn.functional.cross_entropy(model(x).logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return {
        "variant": variant,
        "ms_per_step": 1000 * statistics.median(times),
        "ms_per_step_min": 1000 * min(times),
        "cpu_ms_per_step": 1000 * statistics.median(cpu),
        "activation_mib": sum(saved.values()) / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in model.parameters()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", default="128x64", help="HxW")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; first is the baseline")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        print(json.dumps(measure(args.child, args.batch, (h, w), args.width, args.steps)))
        return 0
    rows = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--child", variant, "--batch", str(args.batch), "--size",
               args.size, "--width", str(args.width), "--steps", str(args.steps),
               "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ.copy())
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"machine: {platform.machine()} {platform.processor()} cpus={os.cpu_count()} "
          f"threads={args.threads} load={os.getloadavg()[0]:.1f}; batch {args.batch} at {args.size}, "
          f"width x{args.width}; LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r}")
    b = base["variant"]
    print(f"| variant | CPU ms/step | x {b} | wall ms/step | x {b} | activation MiB | x {b} | "
          "peak RSS MiB | params |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['cpu_ms_per_step']:.0f} | "
              f"{r['cpu_ms_per_step'] / base['cpu_ms_per_step']:.2f} | "
              f"{r['ms_per_step']:.0f} | {r['ms_per_step'] / base['ms_per_step']:.2f} | "
              f"{r['activation_mib']:.1f} | {r['activation_mib'] / base['activation_mib']:.2f} | "
              f"{r['peak_rss_mib']:.0f} | {r['params']:,} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
