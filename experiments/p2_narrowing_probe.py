"""Exploration: how far p2's palette narrowing trades learnability against the population shift.

Registers nothing. In this process only, population p2 is rebuilt with another palette narrowing
(``omnireid.data.synthetic_domains.narrow_palette``; version 5 uses 0.55), ``p2s1`` is drawn with
it into a cache folder of its own, and one ``osnet_x0_25`` is trained with the demo's recipe
(15 epochs) on ``p1s1`` or on that ``p2s1`` and evaluated on both. Each run appends one JSON line
to ``--out``. docs/data.md reports the result.

Usage:
    PYTHONPATH=src python experiments/p2_narrowing_probe.py 0.4 p2s1 1   # narrowing, trained on, seed
    PYTHONPATH=src python experiments/p2_narrowing_probe.py 0.4 p1s1 1
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.data import synthetic as synthetic_module  # noqa: E402
from omnireid.data import synthetic_domains as domains  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("narrowing", type=float)
    p.add_argument("trained_on", choices=["p1s1", "p2s1"])
    p.add_argument("seed", type=int)
    p.add_argument("--cache", default=None, help="default: a folder per narrowing under the temp folder")
    p.add_argument("--out", default="experiments/results/p2_narrowing_probe/results.jsonl")
    args = p.parse_args()
    domains.POPULATIONS["p2"] = domains.narrow_palette(
        domains.blend_population(domains.P1, domains.P2_FULL, domains.POPULATION_STRENGTH["p2"], "p2",
                                 domains.P2_FULL.description), args.narrowing)
    cache = args.cache or str(Path(tempfile.gettempdir()) / f"omnireid_p2_narrowing_{args.narrowing}")

    from omnireid.cli.demo import demo_recipe
    from omnireid.config import load_config
    from omnireid.data import load_dataset
    from omnireid.engine.fit import fit

    # one drawing process: worker processes would import the registered p2, not this one
    render = synthetic_module._render_all
    synthetic_module._render_all = lambda spec, out, progress, workers: render(spec, out, progress, 1)
    load_dataset("synthetic_p2s1", cache, progress=False)
    synthetic_module._render_all = render
    load_dataset("synthetic_p1s1", cache, progress=False)
    recipe = demo_recipe()
    recipe["data"].update(sources=[f"synthetic_{args.trained_on}"], targets=["synthetic_p1s1", "synthetic_p2s1"],
                          root=cache)
    with tempfile.TemporaryDirectory(prefix="p2_probe_") as workdir:
        recipe["train"].update(seed=args.seed, output_dir=str(Path(workdir) / "run"), eval_freq=0,
                               progress=False, num_threads=1)
        start = time.perf_counter()
        result = fit(load_config(None, [], base=recipe))
    row = {"narrowing": args.narrowing, "trained_on": args.trained_on, "seed": args.seed,
           "seconds": round(time.perf_counter() - start),
           "rank1": {k.removeprefix("synthetic_"): round(100 * v["rank1"], 1) for k, v in result.final.items()},
           "train_acc": result.history[-1]["acc"]}
    print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
