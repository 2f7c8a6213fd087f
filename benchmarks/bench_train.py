"""Training throughput: omnireid vs torchreid, model + loss + optimiser step on the same batches.

Both sides train the same architecture (osnet_x0_25, osnet_x1_0) at batch 32, 256x128, with
label-smoothed cross-entropy over 751 identities and AMSGrad, on the same pre-generated batches,
with the same number of threads, each in its own process. Every setting runs in rounds in which
each side runs once, in an order that changes from round to round so that every run takes every
place in a round equally often (``balanced_order``; a busy machine then slows all alike); the
best round counts.
Everything runs twice: with glibc malloc and with tcmalloc preloaded (when installed), and the
ratios are computed within one allocator only, so the allocator is never credited to the library.

    python benchmarks/bench_train.py                       # both models, both allocators
    python benchmarks/bench_train.py --models osnet_x0_25 --steps 6 --rounds 2
    python benchmarks/bench_train.py --time-to-accuracy    # plus the synthetic time-to-accuracy run
    python benchmarks/bench_train.py --epoch-times          # only the steady-epoch check (below)
    python benchmarks/bench_train.py --allocators glibc glibc+keep --variants bf16+channels_last \
        bf16+channels_last+keep_freed --no-epoch-times      # glibc's freed-memory setting (below)

``--allocators glibc+keep`` runs both sides with glibc malloc set to keep freed memory (the
setting omnireid's long commands make when tcmalloc is not installed,
omnireid.cli.allocator.keep_freed_memory); the variant ``bf16+channels_last+keep_freed`` gives it
to omnireid's side only, under plain glibc, and its ratio is printed apart from the like-for-like
ones.

``--epoch-times`` trains the demo recipe for ``--long-epochs`` epochs (evaluating every 5, as the
demo does) in a child process and checks that no epoch's training takes more than
``--epoch-limit`` (1.2) times the median epoch: the wall time when the machine is idle (other
processes used less than a quarter of a core on average during the run: the machine's busy time
from /proc/stat minus the run's own CPU time; the load average cannot tell, as it counts the run's
own threads), the CPU time of the training process always (other jobs inflate wall time but hardly
CPU time). Evaluation time is reported beside each epoch, not in it.
It exits with status 1 and a loud message when an epoch is too slow.

torchreid lives in its own virtualenv (default /work/venv-tr, ``--torchreid-python``):
    python3 -m venv /work/venv-tr && /work/venv-tr/bin/pip install torch torchvision scipy \
        opencv-python-headless gdown tensorboard && /work/venv-tr/bin/pip install --no-deps torchreid==0.2.5
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TCMALLOC = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4")
NUM_CLASSES = 751

# ------------------------------------------------------------------------------------------------
# worker side (runs inside one interpreter, prints one JSON line)


def _worker(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    data = np.load(args.batches)
    images = torch.from_numpy(data["images"])
    labels = torch.from_numpy(data["labels"]).long()
    torch.manual_seed(0)
    if args.side == "torchreid":
        from torchreid.reid.losses import CrossEntropyLoss
        from torchreid.reid.models import build_model
        from torchreid.reid.optim import build_optimizer

        model = build_model(args.model, num_classes=NUM_CLASSES, loss="softmax", pretrained=False)
        criterion = CrossEntropyLoss(num_classes=NUM_CLASSES, use_gpu=False, label_smooth=True)
        optimizer = build_optimizer(model, optim="amsgrad", lr=0.0015)

        def loss_of(x, y):
            return criterion(model(x), y)
    else:
        sys.path.insert(0, args.src or str(ROOT / "src"))
        from omnireid.engine.optim import build_optimizer
        from omnireid.engine.train import autocast_context
        from omnireid.losses import build_loss
        from omnireid.models import create_model

        model = create_model(args.model, num_classes=NUM_CLASSES)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        criterion = build_loss({"softmax": 1.0}, label_smooth=0.1)
        optimizer = build_optimizer(model, "amsgrad", 0.0015, fused=not args.loop_optimizer)
        device = torch.device("cpu")
        forward = torch.compile(model) if args.compile else model

        def loss_of(x, y):
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_context(device, args.amp):
                out = forward(x)
            return criterion(out, y).total

    model.train()
    n = images.shape[0] // args.batch
    times = []
    started = time.perf_counter()
    for step in range(args.warmup + args.steps):
        i = step % n
        x = images[i * args.batch:(i + 1) * args.batch]
        y = labels[i * args.batch:(i + 1) * args.batch]
        t = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of(x, y)
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t)
        if step == 0:
            first = time.perf_counter() - started
    print(json.dumps({"images_per_s": args.batch / statistics.median(times), "loss": float(loss),
                      "first_step_s": first}))


# ------------------------------------------------------------------------------------------------
# orchestration


def _run(python: str, side: str, model: str, batches: str, env: dict, a: argparse.Namespace, **extra) -> float:
    cmd = [python, str(Path(__file__).resolve()), "--worker", "--side", side, "--model", model,
           "--batches", batches, "--threads", str(a.threads), "--batch", str(a.batch),
           "--steps", str(a.steps), "--warmup", str(a.warmup)]
    for k, v in extra.items():
        cmd += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {model} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["images_per_s"]


@functools.cache
def _keep_freed_env() -> dict:
    """The environment with which `omnireid train` and the other long commands run under glibc
    malloc (omnireid.cli.allocator.keep_freed_memory)."""
    sys.path.insert(0, str(ROOT / "src"))
    from omnireid.cli.allocator import GLIBC_MALLOC_SETTINGS

    return {env: str(value) for env, _param, value in GLIBC_MALLOC_SETTINGS.values()}


def _env(allocator: str | None, threads: int, keep_freed: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH="")
    if allocator:
        env["LD_PRELOAD"] = allocator
    if keep_freed:
        env.update(_keep_freed_env())
    return env


OURS_VARIANTS = {
    "fp32": {"loop_optimizer": True},  # torchreid's settings exactly
    "fp32+fused_optim": {},
    "fp32+channels_last": {"channels_last": True},
    "bf16": {"amp": "bf16"},
    "bf16+channels_last": {"amp": "bf16", "channels_last": True},
    "bf16+channels_last+loop_optim": {"amp": "bf16", "channels_last": True, "loop_optimizer": True},
    "bf16+channels_last+compile": {"amp": "bf16", "channels_last": True, "compile": True},
    # what `omnireid train` runs under glibc malloc: the same step, with glibc set to keep freed
    # memory (only this side; the "glibc+keep" allocator setting gives it to both sides)
    "bf16+channels_last+keep_freed": {"amp": "bf16", "channels_last": True, "keep_freed": True},
}
DEFAULT_VARIANTS = ["fp32", "fp32+fused_optim", "bf16+channels_last",
                    "bf16+channels_last+loop_optim"]
"""Variants run unless --variants says otherwise (``+compile`` spends minutes compiling)."""


def balanced_order(runs: list, r: int) -> list:
    """The order of ``runs`` in round ``r`` (from 0): rotated by ``r // 2`` and reversed in odd
    rounds. Over ``2 * len(runs)`` rounds every run takes every position equally often, and with
    up to three runs each also follows every other equally often. Before, the rounds only
    alternated (first, middle, last; then reversed), so with three runs one of them was always in
    the middle and its place could not be told apart from its setting (benchmarks/README.md,
    "Runs 5 and 6")."""
    k = (r // 2) % len(runs)
    order = runs[k:] + runs[:k]
    return order[::-1] if r % 2 else order


def throughput(a: argparse.Namespace) -> dict:
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    batches = tmp / "batches.npz"
    rng = np.random.default_rng(0)
    n = a.batch * 4
    np.savez(batches, images=rng.standard_normal((n, 3, a.height, a.width), dtype=np.float32),
             labels=rng.integers(0, NUM_CLASSES, n))
    allocators = [("glibc", None, False)] if "glibc" in a.allocators else []
    if "glibc+keep" in a.allocators:  # both sides with glibc set to keep freed memory
        allocators.append(("glibc+keep", None, True))
    tc = next((p for p in TCMALLOC if os.path.exists(p)), None)
    if tc and "tcmalloc" in a.allocators:
        allocators.append(("tcmalloc", tc, False))
    results: dict = {}
    for alloc_name, alloc, keep in allocators:
        env = _env(alloc, a.threads, keep)
        for model in a.models:
            best: dict[str, float] = {}
            per_round: dict[str, list[float]] = {}
            for r in range(a.rounds):
                runs = [("torchreid", a.torchreid_python, "torchreid", {})]
                runs += [(f"omnireid {v}", sys.executable, "ours", kw) for v, kw in OURS_VARIANTS.items()
                         if v in a.variants]
                if a.compare_src:  # the first variant once more, with another checkout's library
                    v = a.variants[0]
                    runs.append((f"compare-src {v}", sys.executable, "ours", {**OURS_VARIANTS[v], "src": a.compare_src}))
                runs = balanced_order(runs, r)
                for label, python, side, kw in runs:
                    kw = dict(kw)
                    run_env = _env(alloc, a.threads, True) if kw.pop("keep_freed", False) and not alloc else env
                    ips = _run(python, side, model, str(batches), run_env, a, **kw)
                    best[label] = max(best.get(label, 0.0), ips)
                    per_round.setdefault(label, []).append(ips)
                    print(f"  [{alloc_name}] {model} round {r + 1} {label:28s} {ips:7.1f} img/s", flush=True)
            results[f"{alloc_name}/{model}"] = {**best, "rounds": per_round}
    return results


def time_to_accuracy(a: argparse.Namespace) -> dict:
    """Train the demo recipe on synthetic_a, evaluating every epoch; report when rank-1 first
    reaches the thresholds."""
    sys.path.insert(0, str(ROOT / "src"))
    from omnireid.cli.demo import demo_recipe
    from omnireid.config import load_config
    from omnireid.engine.fit import fit

    out = Path(tempfile.mkdtemp(prefix="bench_tta_"))
    cfg = load_config(None, [f"train.output_dir={out}", "train.eval_freq=1", "data.targets=[synthetic_a]",
                             f"train.max_epoch={a.tta_epochs}", "train.progress=false",
                             f"train.num_threads={max(1, (os.cpu_count() or 2) - 1)}"], base=demo_recipe())
    result = fit(cfg)
    curve = [(r["epoch"] + 1, r["elapsed_s"], r["eval"]["synthetic_a"]["rank1"], r["eval"]["synthetic_a"]["mAP"])
             for r in result.history]
    reached = {}
    for thr in (0.5, 0.7, 0.8, 0.9):
        hit = next(((e, s) for e, s, r1, _ in curve if r1 >= thr), None)
        reached[f"rank1>={thr:.0%}"] = None if hit is None else {"epoch": hit[0], "seconds": round(hit[1], 1)}
    return {"curve": curve, "reached": reached}


def _machine_busy_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot (Linux), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in (fields + ["0"] * 8)[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _children_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def epoch_times(a: argparse.Namespace) -> bool:
    """Run the long training and check every epoch against the median; True when all pass."""
    import statistics

    out = Path(tempfile.mkdtemp(prefix="bench_epochs_")) / "run"
    env = dict(os.environ, OMNIREID_NO_TCMALLOC="1", PYTHONPATH=str(ROOT / "src"))
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    cmd = [sys.executable, "-m", "omnireid", "demo", "--no-tcmalloc", "--models", "osnet_x0_25", "--jobs", "1",
           "--epochs", str(a.long_epochs), "-o", str(out), "--set", "train.eval_freq=5",
           "--set", "train.progress=false"]
    print(f"\nepoch times: {' '.join(cmd[2:])}  (load average {load_before:.2f} on {cores} cores)", flush=True)
    busy0, own0, t0 = _machine_busy_seconds(), _children_cpu_seconds(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"training failed:\n{proc.stderr[-3000:]}")
    busy1, own1, wall_s = _machine_busy_seconds(), _children_cpu_seconds(), time.perf_counter() - t0
    load_after = os.getloadavg()[0]
    # cores' worth of CPU that other processes used during the run
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / wall_s
    records = [json.loads(line) for line in (out / "osnet_x0_25" / "metrics.jsonl").read_text().splitlines()]
    wall = [r["epoch_seconds"] for r in records]
    cpu = [r["epoch_cpu_seconds"] for r in records]
    med_wall, med_cpu = statistics.median(wall), statistics.median(cpu)
    print(f"{'epoch':>5s} {'train wall s':>12s} {'x median':>8s} {'train CPU s':>11s} {'x median':>8s} "
          f"{'eval wall s':>11s} {'eval CPU s':>10s}")
    for r, w, c in zip(records, wall, cpu):
        print(f"{r['epoch'] + 1:5d} {w:12.2f} {w / med_wall:8.2f} {c:11.2f} {c / med_cpu:8.2f} "
              f"{r.get('eval_seconds', 0.0):11.2f} {r.get('eval_cpu_seconds', 0.0):10.2f}")
    idle = others is not None and others < 0.25
    if others is not None:
        print(f"other processes used {others:.2f} cores on average during the run "
              f"(load average {load_before:.2f} -> {load_after:.2f} on {cores} cores, this run's threads included)")
    checks = [("CPU", cpu, med_cpu)] + ([("wall", wall, med_wall)] if idle else [])
    if not idle:
        print("the machine is busy (or its load cannot be read): wall times are not judged, CPU times are")
    ok = True
    for kind, values, median in checks:
        slow = [(i + 1, v / median) for i, v in enumerate(values) if v > a.epoch_limit * median]
        if slow:
            ok = False
            print("!" * 78)
            print(f"SLOW EPOCH: training {kind} time of epoch(s) "
                  + ", ".join(f"{e} ({ratio:.2f}x)" for e, ratio in slow)
                  + f" exceeds {a.epoch_limit}x the median epoch ({median:.2f} s)")
            print("!" * 78)
    if ok:
        print(f"every epoch within {a.epoch_limit}x the median epoch ({', '.join(k for k, _, _ in checks)} time)")
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--side", default="ours", help=argparse.SUPPRESS)
    p.add_argument("--model", default="osnet_x0_25", help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    p.add_argument("--amp", default="none", help=argparse.SUPPRESS)
    p.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--loop-optimizer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--src", help=argparse.SUPPRESS)
    p.add_argument("--compare-src", help="also run the first variant with the library in this src folder "
                   "(e.g. an older checkout's, from `git archive REV src | tar -x -C DIR`: DIR/src), "
                   "alternating with the others")
    p.add_argument("--models", nargs="+", default=["osnet_x0_25", "osnet_x1_0"])
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(OURS_VARIANTS))
    p.add_argument("--allocators", nargs="+", default=["glibc", "tcmalloc"], choices=["glibc", "glibc+keep", "tcmalloc"],
                   help="glibc+keep: both sides with glibc malloc set to keep freed memory, as omnireid's "
                        "commands set it")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--torchreid-python", default="/work/venv-tr/bin/python")
    p.add_argument("--time-to-accuracy", action="store_true")
    p.add_argument("--tta-epochs", type=int, default=12)
    p.add_argument("--epoch-times", action="store_true", help="only the steady-epoch check")
    p.add_argument("--long-epochs", type=int, default=12, help="epochs of the steady-epoch check")
    p.add_argument("--epoch-limit", type=float, default=1.2, help="largest epoch / median epoch allowed")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-epoch-times", action="store_true", help="skip the steady-epoch check after the table")
    a = p.parse_args()
    if a.worker:
        _worker(a)
        return
    import torch

    if a.epoch_times:
        sys.exit(0 if epoch_times(a) else 1)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").exists() else platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; threads {a.threads}; "
          f"torch {torch.__version__}; batch {a.batch} at {a.height}x{a.width}; {a.steps} timed steps, "
          f"{a.rounds} rounds in balanced order (best counts)", flush=True)
    results = throughput(a)
    print(f"\nimages/s (best round); ratio = omnireid / torchreid under the same allocator "
          f"(load average now {os.getloadavg()[0]:.1f})")
    print(f"{'allocator/model':24s} {'torchreid':>10s} " + " ".join(f"{v:>20s}" for v in a.variants)
          + f" {'best ratio':>11s}")
    summary = {}
    for key, best in results.items():
        tr = best["torchreid"]
        ours = {v: best[f"omnireid {v}"] for v in a.variants}
        # the +keep_freed variant runs under other allocator settings than torchreid: never the
        # "best ratio" (which compares like with like); its ratio is printed on its own line
        same = {v: q for v, q in ours.items() if not OURS_VARIANTS[v].get("keep_freed")} or ours
        top = max(same, key=same.get)
        # within each round both sides ran back to back under the same load: those ratios show
        # the spread that the best-of-rounds ratio hides
        rounds = best["rounds"]
        round_ratios = [o / t for o, t in zip(rounds[f"omnireid {top}"], rounds["torchreid"])]
        summary[key] = {"torchreid": tr, **{f"omnireid {v}": ours[v] for v in ours},
                        "best_setting": top, "ratio": ours[top] / tr,
                        "ratio_per_round": round_ratios, "rounds": rounds,
                        "ratio_fp32_same_settings": ours.get("fp32", float("nan")) / tr}
        cells = " ".join(f"{ours[v]:9.1f} ({ours[v] / tr:4.2f}x)".rjust(20) for v in a.variants)
        print(f"{key:24s} {tr:10.1f} {cells} {ours[top] / tr:10.2f}x")
        print(f"{'':24s} {top} / torchreid within each round: "
              + ", ".join(f"{q:.2f}x" for q in round_ratios))
        if a.compare_src:
            v = a.variants[0]
            old, new = rounds[f"compare-src {v}"], rounds[f"omnireid {v}"]
            summary[key]["compare_src"] = {"src": a.compare_src, "rounds": old}
            print(f"{'':24s} {v} with --compare-src: " + ", ".join(f"{q:.1f}" for q in old) + " img/s; "
                  "this checkout / compare-src within each round: " + ", ".join(f"{n / o:.2f}x" for n, o in zip(new, old))
                  + "; compare-src / torchreid: " + ", ".join(f"{o / t:.2f}x" for o, t in zip(old, rounds["torchreid"])))
        for v in ours:
            if OURS_VARIANTS[v].get("keep_freed") and key.startswith("glibc/"):
                kept = [o / t for o, t in zip(rounds[f"omnireid {v}"], rounds["torchreid"])]
                print(f"{'':24s} {v} (glibc set to keep freed memory on omnireid's side only, as "
                      f"`omnireid train` does) / torchreid within each round: " + ", ".join(f"{q:.2f}x" for q in kept))
    out: dict = {"throughput": summary}
    if a.time_to_accuracy:
        tta = time_to_accuracy(a)
        out["time_to_accuracy"] = tta
        print("\ntime to accuracy (demo recipe, osnet_x0_25 on synthetic_a, evaluated every epoch):")
        for k, v in tta["reached"].items():
            text = "not reached" if v is None else "epoch {epoch}, {seconds} s".format(**v)
            print(f"  {k}: {text}")
    steady = True if a.no_epoch_times else epoch_times(a)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
    if not steady:
        sys.exit(1)


if __name__ == "__main__":
    main()
