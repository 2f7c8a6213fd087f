"""Judge the paper's claims on several `omnireid reproduce` runs of one plan taken together.

A reproduction with seeds 0-2 and a later one with seeds 3-4 (the child given with ``--arch``
as the first run's ``archs/child.json``) are one experiment with five seeds; this script puts
their result rows together and judges claims a-e on all of them with the same code and the
same test as ``omnireid reproduce`` (``omnireid.engine.reproduce.judge``), its rows in the
order a reproduction lists them.

    python experiments/combine_reproductions.py RUN_A RUN_B ... -o OUT

Each RUN folder holds a finished run's ``claims.json`` and ``run_info.json``. The runs must have
the same plan apart from the seeds and how the child was obtained (searched in the run, or
given): the same models, width, recipe, folds, benchmark, data and child architecture; a seed
may appear in one run only. Anything else stops the script with the difference named. OUT gets
``claims.json`` (claims over all seeds and every row, as a reproduction writes it),
``report.html`` / ``report.md`` / ``results.png`` and ``combined_from.json`` (the runs and
their seeds). The verdicts are printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from omnireid.engine.reproduce import judge, row_order, summarize  # noqa: E402
from omnireid.files import write_json  # noqa: E402
from omnireid.viz.reproduce_report import write_report  # noqa: E402

SAME_PLAN_KEYS = ("width", "models", "folds", "recipe_overrides", "one_seed_sigma", "benchmark",
                  "steps_per_epoch", "recipe", "data")
"""Keys of a run's plan (run_info.json) that must agree; the search's keys need not (a later run
gets the child with ``--arch``), the child itself must (:func:`child_arch`)."""


def child_arch(info: dict[str, Any]) -> dict[str, Any] | None:
    """The child architecture a run trained: given with ``--arch``, or derived by its search."""
    plan = info.get("plan", {})
    if plan.get("arch") is not None:
        return plan["arch"]
    return (info.get("search") or {}).get("arch")


def load_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        claims = json.loads((folder / "claims.json").read_text())
        info = json.loads((folder / "run_info.json").read_text())
    except FileNotFoundError as e:
        raise SystemExit(f"{folder}: not a finished reproduction ({e.filename} is missing)") from None
    except json.JSONDecodeError as e:
        raise SystemExit(f"{folder}: unreadable JSON ({e})") from None
    return claims, info


def check_same_plan(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> None:
    """Stop with the first difference between the first run's plan and another's."""
    first, _, info0 = runs[0]
    for folder, _, info in runs[1:]:
        for key in SAME_PLAN_KEYS:
            if info0["plan"].get(key) != info["plan"].get(key):
                raise SystemExit(f"{folder}: plan key {key!r} differs from {first}'s: "
                                 f"{info['plan'].get(key)!r} against {info0['plan'].get(key)!r}")
        if info0.get("steps_per_epoch") != info.get("steps_per_epoch"):
            raise SystemExit(f"{folder}: 'steps_per_epoch' differs from {first}'s")
        if "child" in info0["plan"].get("models", []) and child_arch(info0) != child_arch(info):
            raise SystemExit(f"{folder}: the child architecture differs from {first}'s: "
                             f"{child_arch(info)} against {child_arch(info0)}")


def combine_rows(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, int], Path] = {}
    for folder, claims, _ in runs:
        for row in claims["results"]:
            key = (row["model"], row["setting"], row["seed"])
            if key in seen:
                raise SystemExit(f"{folder}: {key} is also in {seen[key]}; each seed must come from one run")
            seen[key] = folder
            rows.append(row)
    return sorted(rows, key=row_order)


def combined_info(runs: list[tuple[Path, dict[str, Any], dict[str, Any]]], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's run_info with the seeds of all runs, the search of the run that searched,
    and the time of all runs summed."""
    info = json.loads(json.dumps(runs[0][2]))
    info["plan"]["seeds"] = sorted({r["seed"] for r in rows})
    searched = [i for _, _, i in runs if i.get("search")]
    info["search"] = searched[0]["search"] if searched else None
    for key in ("wall_seconds_this_session", "cpu_seconds_all_cells", "train_seconds_all_cells"):
        info[key] = sum(i.get(key) or 0 for _, _, i in runs)
    info["resumed"] = any(i.get("resumed") for _, _, i in runs)
    return info


def print_verdicts(claims: list[dict[str, Any]]) -> None:
    for c in claims:
        print(f"({c['id']}) {c['verdict']:<13} {c['statement']}")
        for cmp in c["evidence"].get("comparisons", []):
            print(f"      {cmp['a']} - {cmp['b']}: {cmp['mean_difference']:+.2f} over seeds {cmp['seeds']}, "
                  f"needed {cmp['threshold']:.2f} -> {cmp['verdict']}")
        for shift, entries in (c["evidence"].get("per_shift") or {}).items():
            for name, cmp in entries.items():
                print(f"      {shift}: {name} {cmp['mean_difference']:+.2f}, needed {cmp['threshold']:.2f} -> {cmp['verdict']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished `omnireid reproduce` folders")
    p.add_argument("-o", "--out", type=Path, required=True, help="folder for the combined claims and report")
    a = p.parse_args(argv)
    if len(a.runs) < 2:
        raise SystemExit("give at least two runs to combine")
    runs = [(folder, *load_run(folder)) for folder in a.runs]
    check_same_plan(runs)
    rows = combine_rows(runs)
    info = combined_info(runs, rows)
    claims = judge(rows, info["plan"].get("one_seed_sigma", 2.0))
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "claims.json", {"claims": claims, "results": rows})
    write_json(a.out / "combined_from.json",
               {"runs": [{"folder": str(f), "seeds": sorted({r["seed"] for r in c["results"]})} for f, c, _ in runs]})
    write_report(a.out, claims, rows, summarize(rows), info)
    print_verdicts(claims)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
