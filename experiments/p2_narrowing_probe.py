"""Exploration: how far p2's palette narrowing trades learnability against the population shift.

Registers nothing. In this process only, population p2 is rebuilt with another palette narrowing
(``omnireid.data.synthetic_domains.narrow_palette``; version 5 uses 0.55), ``p2s1`` is drawn with
it into a cache folder of its own, and one ``osnet_x0_25`` is trained with the demo's recipe
(15 epochs) on ``p1s1`` or on that ``p2s1`` and evaluated on both. Each run appends one JSON line
to ``--out``. docs/data.md reports the result.

``--uniform`` tries the other kind of population difference instead: people in uniforms. Every
top is one of three colours and every bottom one of two (:data:`UNIFORM_TOPS`,
:data:`UNIFORM_BOTTOMS`, each with a small shade jitter), so tops and bottoms no longer tell people
apart; pattern colours, accessories, hair and build still come from p2's full palette and
recipe, with plain tops made rarer (weight 1 instead of 3) so that most people carry a pattern.

Usage:
    PYTHONPATH=src python experiments/p2_narrowing_probe.py 0.4 p2s1 1   # narrowing, trained on, seed
    PYTHONPATH=src python experiments/p2_narrowing_probe.py 0.4 p1s1 1
    PYTHONPATH=src python experiments/p2_narrowing_probe.py 0 p2s1 1 --uniform
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.data import synthetic as synthetic_module  # noqa: E402
from omnireid.data import synthetic_domains as domains  # noqa: E402
from omnireid.data.synthetic_render import _pick  # noqa: E402

UNIFORM_TOPS = ((0.12, 0.16, 0.32), (0.22, 0.22, 0.24), (0.70, 0.55, 0.35))  # navy, charcoal, camel (p2's)
UNIFORM_BOTTOMS = ((0.22, 0.22, 0.24), (0.12, 0.16, 0.32))  # charcoal, navy
UNIFORM_JITTER = 0.04  # shade deviation of one person's uniform


def dress_in_uniforms(make_identity):
    """``make_identity`` with p2's tops and bottoms redrawn from the uniform colours (drawn from
    the same identity stream, after everything else)."""
    tops, bottoms = np.asarray(UNIFORM_TOPS, np.float32), np.asarray(UNIFORM_BOTTOMS, np.float32)

    def make(pid, population, rng):
        person = make_identity(pid, population, rng)
        if population.name == "p2":
            person.top = _pick(rng, tops, UNIFORM_JITTER)
            person.bottom = _pick(rng, bottoms, UNIFORM_JITTER)
        return person
    return make


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("narrowing", type=float)
    p.add_argument("trained_on", choices=["p1s1", "p2s1"])
    p.add_argument("seed", type=int)
    p.add_argument("--cache", default=None, help="default: a folder per narrowing under the temp folder")
    p.add_argument("--uniform", action="store_true", help="p2 in uniforms (see the module's docstring)")
    p.add_argument("--out", default="experiments/results/p2_narrowing_probe/results.jsonl")
    args = p.parse_args()
    p2 = domains.narrow_palette(
        domains.blend_population(domains.P1, domains.P2_FULL, domains.POPULATION_STRENGTH["p2"], "p2",
                                 domains.P2_FULL.description), args.narrowing)
    if args.uniform:
        p2 = dataclasses.replace(p2, pattern_weights=(1.0, *p2.pattern_weights[1:]))
        synthetic_module.make_identity = dress_in_uniforms(synthetic_module.make_identity)
    domains.POPULATIONS["p2"] = p2
    cache = args.cache or str(Path(tempfile.gettempdir()) / f"omnireid_p2_{'uniform' if args.uniform else 'narrowing'}"
                                                            f"_{args.narrowing}")

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
    row = {"narrowing": args.narrowing, **({"uniform": True} if args.uniform else {}), "trained_on": args.trained_on, "seed": args.seed,
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
