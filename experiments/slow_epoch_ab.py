"""Interleaved A/B timing of training steps: do denormal flushing, or an evaluation pass just
before, change the cost of a training step?

One process, one thread, the same batch every step (osnet_x0_25, 256x128, bf16 autocast,
channels-last, AMSGrad, label-smoothed cross-entropy). Rounds repeat

    A: steps with denormals as the CPU handles them (the default)
    B: steps with torch.set_flush_denormal(True)
    E: an evaluation pass (eval mode, fp32, no grad, batches of 128)
    C: steps right after the evaluation (default denormal handling)

and the per-step CPU time (``time.thread_time``: this thread only, so other processes on a shared
machine inflate it much less than wall time) of each phase is compared within each round, then
over rounds (median of the per-round ratios). Weights: torchreid's osnet_x0_25 MSMT17
checkpoint when ``--weights`` is given (it holds a few hundred denormal weights), else random.

    python experiments/slow_epoch_ab.py --rounds 8 --weights /path/osnet_x0_25_msmt17.pth
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--eval-images", type=int, default=512)
    p.add_argument("--weights")
    p.add_argument("--amp", default="bf16", choices=["bf16", "none"])
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from omnireid.engine.optim import build_optimizer
    from omnireid.engine.train import autocast_context
    from omnireid.losses import build_loss
    from omnireid.models import create_model

    model = create_model("osnet_x0_25", num_classes=100, weights=a.weights).to(memory_format=torch.channels_last)
    opt = build_optimizer(model, "amsgrad", 0.0015)
    crit = build_loss({"softmax": 1.0}, label_smooth=0.1)
    x = torch.randn(a.batch, 3, 256, 128).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 100, (a.batch,))
    ev = torch.randn(128, 3, 256, 128).contiguous(memory_format=torch.channels_last)
    dev = torch.device("cpu")

    def steps(n: int) -> list[float]:
        model.train()
        out = []
        for _ in range(n):
            t = time.thread_time()
            opt.zero_grad(set_to_none=True)
            with autocast_context(dev, a.amp):
                o = model(x)
            crit(o, y).total.backward()
            opt.step()
            out.append(time.thread_time() - t)
        return out

    def evaluate() -> float:
        model.eval()
        t = time.thread_time()
        with torch.no_grad():
            for _ in range(a.eval_images // 128):
                model(ev)
        model.train()
        return time.thread_time() - t

    steps(3)  # warm up
    rows = []
    for r in range(a.rounds):
        torch.set_flush_denormal(False)
        sa = steps(a.steps)
        torch.set_flush_denormal(True)
        sb = steps(a.steps)
        torch.set_flush_denormal(False)
        e = evaluate()
        sc = steps(a.steps)
        row = {"A": statistics.median(sa), "B": statistics.median(sb), "C": statistics.median(sc),
               "C_first": sc[0], "eval": e}
        rows.append(row)
        print(f"round {r + 1}: step A {row['A'] * 1000:.0f} ms  B (flush) {row['B'] * 1000:.0f} ms  "
              f"C (after eval) {row['C'] * 1000:.0f} ms, first {row['C_first'] * 1000:.0f} ms  "
              f"eval {e:.2f} s", flush=True)
    for key in ("B", "C", "C_first"):
        ratios = [r[key] / r["A"] for r in rows]
        print(f"{key}/A: median {statistics.median(ratios):.3f}  (min {min(ratios):.3f}, max {max(ratios):.3f})")


if __name__ == "__main__":
    main()
