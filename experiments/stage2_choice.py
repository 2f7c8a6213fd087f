"""Does the stage-2 choice the search cannot make matter? Two children, trained and compared.

The default search (docs/nas.md) decides conv3-1 .. conv4-2 alike in every seed (IN inside) but
leaves conv2-1 and conv2-2 near a tie between ``none`` and ``inside`` that the seed, or the order of
floating-point sums, tips. This trains the two ends of that tie with `omnireid reproduce`'s recipe
and seeds, in its single-source setting only (trained on ``p1s1``, evaluated on it and on the
style, population and both-shift targets), and compares them seed by seed:

* ``stage2_inside``: IN inside every block (``inside`` x 6), IN stem;
* ``stage2_none``: ``none, none``, then ``inside`` x 4, IN stem.

Each is one ``omnireid reproduce`` plan with only the child (``models=("child",)``, no
leave-one-out fold), so its cells are the reproduction's own (same recipe, seeds, thread count,
steps per epoch). A third plan retrains the child of the published default run
(``experiments/results/reproduce_full_v5_batched_gate``) for seed 0, to check that its cell comes
out as recorded there.

    PYTHONPATH=src python experiments/stage2_choice.py --out DIR
    PYTHONPATH=src python experiments/stage2_choice.py --out DIR --table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.engine.reproduce import ReproducePlan, reproduce  # noqa: E402
from omnireid.evaluation.claims import paired_comparison  # noqa: E402
from omnireid.models.arch import OSNetArch  # noqa: E402

PUBLISHED = Path(__file__).resolve().parent / "results" / "reproduce_full_v5_batched_gate"
CHILDREN = {
    "stage2_inside": ["inside"] * 6,
    "stage2_none": ["none", "none"] + ["inside"] * 4,
}
SETTINGS = ("same-domain", "style", "population", "both")


def arch(blocks: list[str]) -> OSNetArch:
    return OSNetArch(channels=(16, 64, 96, 128), layers=(2, 2, 2), blocks=tuple(blocks), conv1_in=True)


def rank1(folder: Path) -> dict[str, dict[int, float]]:
    """Per setting, rank-1 per seed (the setting's mean over its targets, as claims.json rows)."""
    rows = json.loads((folder / "claims.json").read_text())["results"]
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["model"] == "child" and r["setting"] in SETTINGS:
            out.setdefault(r["setting"], {})[r["seed"]] = r["rank1"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--table", action="store_true", help="only compare the runs already made")
    args = p.parse_args()
    out = Path(args.out)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    plans = {name: ReproducePlan(seeds=seeds, folds=(), models=("child",), arch=arch(blocks))
             for name, blocks in CHILDREN.items()}
    published = OSNetArch.from_dict(json.loads((PUBLISHED / "archs" / "child.json").read_text()))
    plans["published_child"] = ReproducePlan(seeds=(0,), folds=(), models=("child",), arch=published)
    if not args.table:
        for name, plan in plans.items():
            print(f"{name}: {', '.join(b.value for b in plan.arch.blocks)}", flush=True)
            reproduce(plan, out / name, jobs=args.jobs, threads=1, on_progress=print)
    a, b = rank1(out / "stage2_inside"), rank1(out / "stage2_none")
    print("\n| setting | stage2_inside rank-1 per seed | stage2_none | inside - none (mean ± sd) | t (paired) "
          "| needed difference | resolved |")
    print("| --- | --- | --- | --- | ---: | ---: | --- |")
    for s in SETTINGS:
        # the test `omnireid reproduce` judges its claims with
        c = paired_comparison("stage2_inside", "stage2_none", a.get(s, {}), b.get(s, {}))
        t = c.mean / (c.sd / np.sqrt(len(c.seeds))) if c.sd else float("nan")
        print(f"| {s} | {', '.join(f'{v:.1f}' for v in c.a_values)} | {', '.join(f'{v:.1f}' for v in c.b_values)} "
              f"| {c.mean:+.1f} ± {c.sd or 0:.1f} | {t:.2f} | {c.threshold:.1f} | {'yes' if c.resolved else 'no'} |")
    mine, theirs = rank1(out / "published_child"), rank1(PUBLISHED)
    print("\npublished child, seed 0, retrained here against the published run's cell:")
    for s in SETTINGS:
        print(f"  {s}: {mine[s][0]:.3f} here, {theirs[s][0]:.3f} published")
    return 0


if __name__ == "__main__":
    sys.exit(main())
