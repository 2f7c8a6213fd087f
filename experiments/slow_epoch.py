"""Where does the time of each training epoch go?  (the "slow fifth epoch" investigation)

Runs ``fit()`` on the demo recipe (osnet_x0_25 on the synthetic domain ``a``, bf16 autocast,
cosine schedule, evaluation every ``--eval-freq`` epochs) and records per epoch, separately:

- training: wall time, CPU time of this process (all its threads) and of the finished loader
  workers (``RUSAGE_CHILDREN``; workers end with each epoch), time inside ``optimizer.step``;
- evaluation: wall and CPU time (it runs inside the epoch, so the epoch's ``elapsed_s``
  includes it);
- denormal floats (non-zero values below float32's smallest normal number) in the weights,
  the gradients of the last step, the optimiser state and the BatchNorm statistics, and in the
  activations of one batch;
- the resident memory.

    python experiments/slow_epoch.py --epochs 10 --out /tmp/se_base
    python experiments/slow_epoch.py --epochs 10 --flush-denormal --out /tmp/se_ftz

CPU time is what to compare on a shared machine: other jobs inflate wall time but not the CPU
time this process spends (apart from cache effects).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TINY = torch.finfo(torch.float32).tiny


def denormals(tensors) -> tuple[int, int]:
    """(denormal count, element count) over float tensors."""
    bad = total = 0
    for t in tensors:
        if t is None or not t.is_floating_point():
            continue
        t = t.detach()
        bad += int(((t != 0) & (t.abs() < TINY)).sum())
        total += t.numel()
    return bad, total


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def usage() -> dict:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"user": r.ru_utime, "sys": r.ru_stime, "minflt": r.ru_minflt}


def cuhk03_recipe(folder: Path, compat: Path) -> list[str]:
    """The issue's setting: fine-tune torchreid's osnet_x0_25 MSMT17 weights on the CUHK03
    crops of the compatibility folder (80 % of the identities), evaluating on the other 20 %
    (camera 0 queries, camera 1 gallery), at 256x128."""
    import csv
    import random

    rows = list(csv.DictReader(open(compat / "cuhk03_pair1_val" / "manifest.csv")))
    pids = sorted({r["pid"] for r in rows})
    test = set(random.Random(0).sample(pids, len(pids) // 5))
    manifest = folder / "cuhk03.csv"
    with open(manifest, "w") as f:
        f.write("path,pid,camid,split\n")
        for r in rows:
            split = ("query" if r["camid"] == "0" else "gallery") if r["pid"] in test else "train"
            f.write(f"{compat / 'cuhk03_pair1_val' / r['path']},{r['pid']},{r['camid']},{split}\n")
    spec = f"{{name: csv_manifest, root: {manifest}, allow_absolute: true}}"
    return [f"data.sources=[{spec}]", f"data.targets=[{spec}]",
            "data.height=256", "data.width=128", "data.batch_size=32", "data.num_workers=1",
            f"model.weights={compat / 'weights' / 'osnet_x0_25_msmt17.pth'}", "optim.lr=0.0015",
            "test.batch_size=128"]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--eval-freq", type=int, default=5)
    p.add_argument("--flush-denormal", action="store_true", help="torch.set_flush_denormal(True) first")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", required=True)
    p.add_argument("--data", choices=["demo", "cuhk03"], default="demo",
                   help="demo: the demo recipe; cuhk03: fine-tune on the real CUHK03 crops "
                        "($OMNIREID_COMPAT_DIR)")
    a = p.parse_args()

    from omnireid.cli.demo import demo_recipe
    from omnireid.config import load_config
    from omnireid.engine import fit as fit_module

    if a.flush_denormal:
        assert torch.set_flush_denormal(True), "flush-denormal not supported on this CPU"
    out = Path(a.out)
    log = out.with_suffix(".jsonl")
    extra = []
    if a.data == "cuhk03":
        out.mkdir(parents=True, exist_ok=True)
        extra = cuhk03_recipe(out.parent, Path(os.environ.get("OMNIREID_COMPAT_DIR", "/work/shared/compat")))
    cfg = load_config(None, [f"train.output_dir={out}", f"train.max_epoch={a.epochs}",
                             f"train.eval_freq={a.eval_freq}", "train.progress=false",
                             "train.num_threads=1", *extra, *a.overrides], base=demo_recipe())
    rows: list[dict] = []
    real_train, real_eval = fit_module.train_one_epoch, fit_module.evaluate
    step_time = {"s": 0.0, "t0": 0.0}
    hooked = set()

    def train_one_epoch(model, loader, criterion, optimizer, **kw):
        if id(optimizer) not in hooked:
            hooked.add(id(optimizer))
            optimizer.register_step_pre_hook(lambda *_: step_time.__setitem__("t0", time.perf_counter()))
            optimizer.register_step_post_hook(
                lambda *_: step_time.__setitem__("s", step_time["s"] + time.perf_counter() - step_time["t0"]))
        step_time["s"] = 0.0
        w0, c0, k0, u0 = time.perf_counter(), time.process_time(), cpu_children(), usage()
        stats = real_train(model, loader, criterion, optimizer, **kw)
        w1, c1, k1, u1 = time.perf_counter(), time.process_time(), cpu_children(), usage()
        opt_tensors = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
        bn = [b for n, b in model.named_buffers() if "running" in n]
        acts: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: acts.append(o.detach()))
                 for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        batch = next(iter(loader))
        was = model.training
        model.eval()
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.train.amp == "bf16"):
            model(batch.images[:8])
        model.train(was)
        for h in hooks:
            h.remove()
        row = {
            "epoch": kw["epoch"] + 1, "train_wall": w1 - w0, "train_cpu": c1 - c0,
            "worker_cpu": k1 - k0, "optimizer_step_s": step_time["s"], "steps": stats.steps,
            "lr": optimizer.param_groups[0]["lr"], "loss": stats.loss,
            "denormal_weights": denormals(model.parameters())[0],
            "denormal_grads": denormals(p.grad for p in model.parameters())[0],
            "denormal_optim": denormals(opt_tensors)[0], "optim_elems": denormals(opt_tensors)[1],
            "denormal_bn": denormals(bn)[0],
            "denormal_acts": denormals(a.float() for a in acts)[0], "act_elems": denormals(acts)[1],
            "rss_mb": rss_mb(), "eval_wall": 0.0, "eval_cpu": 0.0,
            "train_user": u1["user"] - u0["user"], "train_sys": u1["sys"] - u0["sys"],
            "train_minflt": u1["minflt"] - u0["minflt"], "load": os.getloadavg()[0],
        }
        rows.append(row)
        return stats

    def evaluate(*args, **kw):
        w0, c0 = time.perf_counter(), time.process_time()
        result = real_eval(*args, **kw)
        rows[-1]["eval_wall"] += time.perf_counter() - w0
        rows[-1]["eval_cpu"] += time.process_time() - c0
        return result

    fit_module.train_one_epoch = train_one_epoch
    fit_module.evaluate = evaluate
    t0 = time.perf_counter()
    fit_module.fit(cfg)
    total = time.perf_counter() - t0
    with open(log, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    keys = ["epoch", "train_wall", "train_cpu", "train_user", "train_sys", "train_minflt", "worker_cpu",
            "optimizer_step_s", "eval_wall", "eval_cpu", "denormal_weights", "denormal_grads",
            "denormal_optim", "denormal_bn", "denormal_acts", "rss_mb", "load"]
    print(f"flush_denormal={a.flush_denormal} eval_freq={a.eval_freq} threads={torch.get_num_threads()} "
          f"load={os.getloadavg()[0]:.2f} total {total:.1f} s")
    print(" ".join(f"{k[:12]:>12s}" for k in keys))
    for r in rows:
        print(" ".join(f"{r[k]:12.2f}" if isinstance(r[k], float) else f"{r[k]:12d}" for k in keys))


if __name__ == "__main__":
    main()
