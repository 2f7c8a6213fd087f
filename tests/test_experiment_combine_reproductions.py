"""experiments/combine_reproductions.py: claims judged on the rows of several reproductions of one
plan, on a published reproduction split into two runs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from omnireid.evaluation.claims import evaluate_claims
from omnireid.evaluation.paper_numbers import PAPER_NUMBERS
from tests._scripts import ROOT, load_script

PUBLISHED = ROOT / "experiments" / "results" / "reproduce_full_v5_batched_gate"


@pytest.fixture(scope="module")
def combine():
    return load_script("experiments/combine_reproductions.py")


@pytest.fixture
def published():
    claims = json.loads((PUBLISHED / "claims.json").read_text())
    info = json.loads((PUBLISHED / "run_info.json").read_text())
    assert {r["seed"] for r in claims["results"]} == {0, 1, 2}
    return claims, info


def _write_run(folder: Path, rows: list, info: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "claims.json").write_text(json.dumps({"claims": [], "results": rows}))
    (folder / "run_info.json").write_text(json.dumps(info))
    return folder


def _split(tmp_path: Path, published, first_seeds=(0, 1)):
    """The published run as two: its search run with ``first_seeds``, and a run of the other
    seeds that was given the searched child with ``--arch``."""
    claims, info = published
    rows_a = [r for r in claims["results"] if r["seed"] in first_seeds]
    rows_b = [r for r in claims["results"] if r["seed"] not in first_seeds]
    info_a = copy.deepcopy(info)
    info_a["plan"]["seeds"] = list(first_seeds)
    info_b = copy.deepcopy(info)
    info_b["plan"]["seeds"] = sorted({r["seed"] for r in rows_b})
    info_b["plan"]["arch"] = info["search"]["arch"]
    info_b["search"] = None
    return (_write_run(tmp_path / "a", rows_a, info_a), _write_run(tmp_path / "b", rows_b, info_b),
            info_a, info_b, rows_b)


def test_two_runs_are_judged_as_the_one_run_they_were_cut_from(combine, published, tmp_path, capsys):
    claims, info = published
    a, b, *_ = _split(tmp_path, published)
    out = tmp_path / "out"
    assert combine.main([str(a), str(b), "-o", str(out)]) == 0
    combined = json.loads((out / "claims.json").read_text())
    assert combined["results"] == claims["results"]  # the same rows, in the order the reproduction listed them
    whole = [c.to_dict() for c in evaluate_claims(claims["results"], one_seed_sigma=info["plan"]["one_seed_sigma"],
                                                  paper=PAPER_NUMBERS)]
    assert combined["claims"] == json.loads(json.dumps(whole))
    # every comparison runs over the three seeds of both runs, not one run's
    assert all(c["seeds"] == [0, 1, 2] for claim in combined["claims"] for c in claim["evidence"]["comparisons"])
    assert json.loads((out / "combined_from.json").read_text())["runs"] == [
        {"folder": str(a), "seeds": [0, 1]}, {"folder": str(b), "seeds": [2]}]
    html = (out / "report.html").read_text()
    assert "searched child" in html
    printed = capsys.readouterr().out
    for claim in combined["claims"]:
        assert f"({claim['id']}) {claim['verdict']}" in printed


def test_a_seed_in_two_runs_is_refused(combine, published, tmp_path):
    claims, info = published
    a, _, _, info_b, _ = _split(tmp_path, published)
    again = _write_run(tmp_path / "again", [r for r in claims["results"] if r["seed"] == 1], info_b)
    with pytest.raises(SystemExit, match="also in"):
        combine.main([str(a), str(again), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, named", [
    (lambda info: info["plan"]["recipe"]["optim"].update(lr=0.001), "recipe"),
    (lambda info: info["plan"].update(folds=[0]), "folds"),
    (lambda info: info["plan"]["arch"].update(blocks=["none"] * 6), "child architecture"),
    (lambda info: info["plan"]["data"].update(synthetic_p1s1="another"), "data"),
])
def test_runs_of_different_plans_are_refused_with_the_difference_named(combine, published, tmp_path, change, named):
    a, b, _, info_b, rows_b = _split(tmp_path, published)
    changed = copy.deepcopy(info_b)
    change(changed)
    other = _write_run(tmp_path / "other", rows_b, changed)
    with pytest.raises(SystemExit, match=named):
        combine.main([str(a), str(other), "-o", str(tmp_path / "out")])
    assert combine.main([str(a), str(b), "-o", str(tmp_path / "out")]) == 0  # the control


def test_a_folder_without_a_finished_run_is_named(combine, published, tmp_path):
    a, *_ = _split(tmp_path, published)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="empty.*not a finished reproduction"):
        combine.main([str(a), str(empty), "-o", str(tmp_path / "out")])
