"""Do the network weights of the supernet learn in each search mode? A memorisation probe.

32 random images of 8 identities, 12 Adam steps (lr 1e-3, wd 5e-4, label smoothing 0.1) at the
search's starting temperature 10; prints the training accuracy after each step and the size of
the architecture-weight gradient per block (mean |d loss / d alpha| over the steps). A plain
OSNet x0_25 with the search's conv1 IN and non-affine norms is the baseline.

    python experiments/nas_modes_learning.py
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from omnireid.models import create_model
from omnireid.models.supernet import build_supernet, remove_norm_affine

VARIANTS = ("plain", "mixture", "two_path", "single_path", "mixture+shared", "two_path+shared",
            "single_path+shared")


def probe(variant: str, steps: int) -> tuple[list[float], list[float], float]:
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 64, 32), torch.arange(32) % 8
    if variant == "plain":
        model = create_model("osnet", width=0.25, num_classes=8, conv1_in=True)
        remove_norm_affine(model)
    else:
        mode, _, shared = variant.partition("+")
        model = build_supernet(8, width=0.25, mode=mode, share_weights=bool(shared))
        model.set_temperature(10.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    accs, grads = [], torch.zeros(6)
    start = time.perf_counter()
    for _ in range(steps):
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out.logits, y, label_smoothing=0.1)
        opt.zero_grad()
        loss.backward()
        if variant != "plain":
            grads += torch.stack([b.alpha.grad.abs().mean() for _, b in model.mixed_blocks()])
        opt.step()
        accs.append(float((out.logits.argmax(1) == y).float().mean()))
    return accs, (grads / steps).tolist(), time.perf_counter() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variants", default=",".join(VARIANTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print("| variant | train accuracy after steps 1..N | final | mean abs alpha grad per block "
          "(conv2-1 .. conv4-2) | seconds |")
    print("|---|---|---|---|---|")
    for variant in args.variants.split(","):
        accs, grads, seconds = probe(variant, args.steps)
        g = " ".join(f"{v:.0e}" for v in grads) if variant != "plain" else "-"
        print(f"| {variant} | {' '.join(f'{a:.2f}' for a in accs)} | {accs[-1]:.2f} | {g} | "
              f"{seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
