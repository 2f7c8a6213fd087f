"""`omnireid reproduce` end to end on tiny data: outputs, claims.json format, resume, run folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from omnireid.cli import main
from omnireid.config import NasConfig, load_nas_config
from omnireid.engine import reproduce as reproduce_module
from omnireid.engine.fit import FitResult
from omnireid.engine.reproduce import (
    MODELS,
    SETTINGS,
    Benchmark,
    Cell,
    ReproducePlan,
    cell_rows,
    collect_rows,
    plan_cells,
    quick_plan,
    run_cell,
    summarize,
)
from omnireid.evaluation.claims import evaluate_claims
from omnireid.models.arch import make_arch
from omnireid.viz.reproduce_report import report_markdown

TINY = ("{num_ids: 8, num_test_ids: 4, num_cameras: 2, cameras_per_id: [2, 2], images_per_camera: [2, 3], "
        "num_distractors: 2, num_junk: 1, height: 64, width: 32}")
SMALL = [f"data.synthetic={TINY}", "data.height=32", "data.width=16", "data.batch_size=4"]

BENCH = Benchmark(source="s", shift_targets={"style": ("t1", "t2"), "population": ("t3",), "both": ("t4", "t5")},
                  leave_one_out=((("s", "t4"), "t5"), (("t4", "t5"), "s"), (("s", "t5"), "t4")),
                  search_sources=("x", "y"))


# ---------------------------------------------------------------- planning and rows
def _fake_fit(monkeypatch, note) -> list:
    """Replace the cells' training with a stub that records ``note(cfg, resume)`` per call."""
    calls: list = []

    def fake_fit(cfg, resume=None, overwrite=False):
        calls.append(note(cfg, resume))
        return FitResult(Path(cfg.train.output_dir), 1, {"s": {"rank1": 0.5, "mAP": 0.4}}, 1,
                         [{"steps": 3}], 0.0)

    monkeypatch.setattr(reproduce_module, "fit", fake_fit)
    return calls


def test_plan_cells_covers_every_model_setting_and_seed() -> None:
    plan = ReproducePlan(seeds=(0, 1), benchmark=BENCH)
    # folds with a single-source counterpart: held-out t5 and t4 (not s, the source itself)
    assert plan.chosen_folds() == [(("s", "t4"), "t5"), (("s", "t5"), "t4")]
    cells = plan_cells(plan)
    assert len(cells) == 2 * len(MODELS) * 3
    single = [c for c in cells if not c.multi_source]
    assert {c.targets for c in single} == {("s", "t1", "t2", "t3", "t4", "t5")}
    assert cells[0].seed == 0 and cells[-1].seed == 1  # whole seeds first
    assert len({c.key for c in cells}) == len(cells)
    quick = quick_plan()
    assert quick.seeds == (0,) and len(quick.chosen_folds()) == 1
    # the default searches with `omnireid nas`'s default recipe, --quick with the short one, each
    # on the domains its recipe names
    assert ReproducePlan().search_recipe == "nas" and quick.search_recipe == "nas_quick"
    assert ReproducePlan().benchmark.search_sources == tuple(NasConfig().data.sources)
    assert quick.benchmark.search_sources == tuple(load_nas_config("nas_quick").data.sources)
    assert quick.to_dict()["search"] == dataclasses.asdict(load_nas_config("nas_quick", ["nas.width=0.25"]))
    assert quick.to_dict()["search"] != ReproducePlan().to_dict()["search"]


def test_reproduction_trains_with_the_demos_recipe() -> None:
    """Every reproduction cell trains with the demo's recipe, in fp32 and for fewer epochs (the
    default run's 48 trainings must fit 90 minutes on 2 cores; docs/nas.md), nothing else changed."""
    from omnireid.cli.demo import demo_recipe

    demo, repro = demo_recipe(), reproduce_module.REPRODUCE_RECIPE
    for section, keys in {"data": ("height", "width", "batch_size", "sampler", "random_flip"),
                          "loss": ("softmax", "triplet", "label_smooth"),
                          "optim": ("name", "lr", "weight_decay"),
                          "sched": ("name", "warmup_epochs", "warmup_factor")}.items():
        for key in keys:
            assert repro[section][key] == demo[section][key], f"{section}.{key}"
    assert repro["train"]["amp"] == "none"
    assert repro["train"]["max_epoch"] <= demo["train"]["max_epoch"]


def test_rows_average_each_setting_over_its_targets() -> None:
    single = Cell("osnet", ("s",), ("s", "t1", "t2", "t3", "t4", "t5"), 0)
    metrics = {t: {"rank1": r, "mAP": r / 2} for t, r in
               {"s": 0.9, "t1": 0.5, "t2": 0.3, "t3": 0.6, "t4": 0.2, "t5": 0.1}.items()}
    parts = cell_rows(single, metrics, BENCH)
    parts += cell_rows(Cell("osnet", ("s", "t4"), ("t5",), 0), {"t5": {"rank1": 0.25, "mAP": 0.1}}, BENCH)
    parts += cell_rows(Cell("osnet", ("s", "t5"), ("t4",), 0), {"t4": {"rank1": 0.35, "mAP": 0.2}}, BENCH)
    rows = {r["setting"]: r for r in collect_rows(parts)}
    assert list(rows) == list(SETTINGS)
    assert rows["same-domain"]["rank1"] == pytest.approx(90.0)
    assert rows["style"]["rank1"] == pytest.approx(40.0) and set(rows["style"]["targets"]) == {"t1", "t2"}
    assert rows["both"]["rank1"] == pytest.approx(15.0)
    assert rows["multi-source"]["rank1"] == pytest.approx(30.0)
    assert rows["multi-source"]["trained_on"] == {"t5": ["s", "t4"], "t4": ["s", "t5"]}


def test_markdown_report_tables_match_the_rows() -> None:
    """report.md's tables hold the mean and sd over seeds of each model and target, recomputed
    here from the rows by hand, and every claim's verdict and comparisons."""
    rows = []
    for seed, (a, b) in enumerate([(60.0, 20.0), (64.0, 26.0), (62.0, 29.0)]):
        rows.append({"model": "osnet", "setting": "same-domain", "seed": seed, "rank1": a, "mAP": a / 2,
                     "targets": {"s": {"rank1": a, "mAP": a / 2}}, "trained_on": ["s"]})
        rows.append({"model": "osnet", "setting": "style", "seed": seed, "rank1": b, "mAP": b / 2,
                     "targets": {"synthetic_t1": {"rank1": b, "mAP": b / 2}}, "trained_on": ["s"]})
        rows.append({"model": "osnet", "setting": "multi-source", "seed": seed, "rank1": b + 1, "mAP": b,
                     "targets": {"synthetic_t1": {"rank1": b + 1, "mAP": b}}, "trained_on": {"synthetic_t1": ["s"]}})
    claims = [{"id": "a", "statement": "A claim.", "verdict": "fails",
               "evidence": {"comparisons": [{"a": "x", "b": "y", "differences": [-3.0, -4.0, -5.0],
                                             "mean_difference": -4.0, "sd_difference": 1.0, "threshold": 2.48,
                                             "test": "paired t-test", "verdict": "fails"}],
                            "note": "a note", "paper": {"note": "published", "source": "MODEL_ZOO.md"}}}]
    info = {"plan": {"seeds": [0, 1, 2], "width": 0.25, "benchmark": {"source": "s"}}, "steps_per_epoch": 7,
            "environment": {"cpu": "some CPU", "cpu_count": "2"}, "jobs": 2, "threads_per_job": 1}
    text = report_markdown(claims, rows, summarize(rows), info)
    lines = text.splitlines()
    # style column of the setting table: mean 25.0, sd of (20, 26, 29) = 4.58...
    assert "| OSNet | 62.0 ± 2.0 | 25.0 ± 4.6 | 26.0 ± 4.6 |" in lines
    # per target: the single-source column first, the held-out one after it
    at = lines.index("## Rank-1 (%) per target domain, mean ± std over seeds")
    assert lines[at + 2] == "| model | s | t1 | t1 (held out) |"
    assert lines[at + 4] == "| OSNet | 62.0 ± 2.0 | 25.0 ± 4.6 | 26.0 ± 4.6 |"
    assert "| a | **fails** | A claim. |" in lines
    assert "| x - y | -3.0, -4.0, -5.0 | -4.00 | 1.00 | 2.48 | fails |" in lines
    assert "### (a) A claim: fails" in lines and "Test: paired t-test" in lines
    assert any(line.startswith("Machine: some CPU, 2 CPUs") for line in lines)


def test_a_cell_is_read_back_only_when_its_architecture_and_recipe_are_unchanged(tmp_path, monkeypatch) -> None:
    """``archs/child.json`` keeps its path when a reproduction is given another child: a finished
    cell trained with the old child must be trained again, the others read back."""
    calls = _fake_fit(monkeypatch, lambda cfg, resume: (cfg.model.arch, resume))
    arch_path = tmp_path / "child.json"
    make_arch(0.25, ("none",) * 6).save(arch_path)
    cell = {"model": "child", "sources": ["synthetic_p1s1"], "targets": ["synthetic_p1s1"], "seed": 0}
    folder = tmp_path / "cell"
    first = run_cell(cell, str(arch_path), str(folder), 5, 1, [])
    assert len(calls) == 1 and calls[0][1] is None and first["fingerprint"]
    # same spec: read back, not trained
    assert run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"] == first["fingerprint"] and len(calls) == 1
    # other threads: same result, read back
    assert run_cell(cell, str(arch_path), str(folder), 5, 2, [])["fingerprint"] == first["fingerprint"] and len(calls) == 1
    # another recipe override or steps per epoch: trained again
    run_cell(cell, str(arch_path), str(folder), 6, 1, [])
    assert len(calls) == 2
    # another child at the same path: trained again, and the record holds the new architecture
    make_arch(0.25, ("inside",) * 6, conv1_in=True).save(arch_path)
    again = run_cell(cell, str(arch_path), str(folder), 6, 1, [])
    assert len(calls) == 3 and again["arch"]["blocks"] == ["inside"] * 6
    assert json.loads((folder / "cell.json").read_text())["fingerprint"] == again["fingerprint"] != first["fingerprint"]
    # a record written before fingerprints were kept is matched on its architecture
    old = json.loads((folder / "cell.json").read_text())
    del old["fingerprint"]
    (folder / "cell.json").write_text(json.dumps(old))
    assert run_cell(cell, str(arch_path), str(folder), 6, 1, []) == old and len(calls) == 3
    old["arch"]["blocks"] = ["none"] * 6
    (folder / "cell.json").write_text(json.dumps(old))
    run_cell(cell, str(arch_path), str(folder), 6, 1, [])
    assert len(calls) == 4
    # an interrupted cell resumes from last.pt with the same spec, and starts over with another
    (folder / "cell.json").unlink()
    (folder / "last.pt").write_bytes(b"x")
    run_cell(cell, str(arch_path), str(folder), 6, 1, [])
    assert calls[-1][1] == folder
    (folder / "cell.json").unlink()
    (folder / "last.pt").write_bytes(b"x")
    run_cell(cell, str(arch_path), str(folder), 7, 1, [])
    assert calls[-1][1] is None


def test_a_cell_made_by_another_training_recipe_or_other_data_is_trained_again(tmp_path, monkeypatch) -> None:
    """A library upgrade that changes the cells' recipe or a synthetic domain's recipe must not
    let a resumed or overwritten reproduction read back cells made before it."""
    from omnireid.data import synthetic_domains

    calls = _fake_fit(monkeypatch, lambda cfg, resume: cfg.train.max_epoch)
    arch_path = tmp_path / "osnet.json"
    make_arch(0.25, ("none",) * 6).save(arch_path)
    cell = {"model": "osnet", "sources": ["synthetic_p1s1"], "targets": ["synthetic_p2s1"], "seed": 0}
    folder = tmp_path / "cell"
    first = run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"]
    assert run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"] == first and len(calls) == 1
    # the training recipe of every cell changed
    monkeypatch.setitem(reproduce_module.REPRODUCE_RECIPE, "train",
                        {**reproduce_module.REPRODUCE_RECIPE["train"], "max_epoch": 11})
    second = run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"]
    assert calls == [10, 11] and second != first
    plan_fp = reproduce_module.reproduce_fingerprint(ReproducePlan(models=("osnet",)))
    # the population of a target domain changed (another generator version)
    p2 = synthetic_domains.POPULATIONS["p2"]
    monkeypatch.setitem(synthetic_domains.POPULATIONS, "p2", dataclasses.replace(p2, hat_p=p2.hat_p / 2))
    third = run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"]
    assert len(calls) == 3 and third not in (first, second)
    # and so did the whole reproduction's, so that its run folder is not taken for the same run
    assert reproduce_module.reproduce_fingerprint(ReproducePlan(models=("osnet",))) != plan_fp
    # a domain the cell does not use changes nothing
    monkeypatch.setitem(synthetic_domains.POPULATIONS, "p4", dataclasses.replace(
        synthetic_domains.POPULATIONS["p4"], hat_p=0.0))
    assert run_cell(cell, str(arch_path), str(folder), 5, 1, [])["fingerprint"] == third and len(calls) == 3


# ---------------------------------------------------------------- the command end to end
@pytest.fixture()
def tiny_env(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("OMNIREID_CACHE", str(tmp_path / "cache"))
    return tmp_path


def _argv(out: Path, *extra: str) -> list[str]:
    argv = ["reproduce", "--quick", "-o", str(out), "--jobs", "2", "--set", "train.max_epoch=2",
            "--set", "train.max_steps_per_epoch=2", "--nas-set", "train.max_epoch=2",
            "--nas-set", "train.max_steps_per_epoch=2", *extra]
    for item in SMALL:
        argv += ["--set", item, "--nas-set", item]
    return argv


def test_reproduce_quick_end_to_end_and_resume(tiny_env, capsys) -> None:
    out = tiny_env / "rep"
    assert main(_argv(out)) == 0
    text = capsys.readouterr().out
    assert "claim" in text and f"report: {out / 'report.html'}" in text
    claims = json.loads((out / "claims.json").read_text())
    assert list(claims) == ["claims", "results"]
    assert [c["id"] for c in claims["claims"]] == list("abcde")
    for c in claims["claims"]:
        assert set(c) == {"id", "statement", "verdict", "evidence"}
        assert c["verdict"] in ("holds", "fails", "not resolved")
        assert "MODEL_ZOO.md" in c["evidence"]["paper"]["source"]
    rows = claims["results"]
    assert len(rows) == len(MODELS) * len(SETTINGS)  # one seed
    assert {(r["model"], r["setting"], r["seed"]) for r in rows} == {(m, s, 0) for m in MODELS for s in SETTINGS}
    for r in rows:
        assert 0.0 <= r["rank1"] <= 100.0 and 0.0 <= r["mAP"] <= 100.0 and r["targets"]
    # the verdicts are what the claim logic gives on these rows
    again = [c.verdict for c in evaluate_claims(rows)]
    assert again == [c["verdict"] for c in claims["claims"]]
    html = (out / "report.html").read_text()
    assert "mean ± std" in html and "data:image/png;base64," in html and "(e)" in html
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "## Rank-1 (%) per target domain" in md and "### (e)" in md
    assert "(search: recipe nas_quick, on synthetic_a+synthetic_c, " in md and "recipe nas_quick" in html
    info = json.loads((out / "run_info.json").read_text())
    assert info["plan"]["search_recipe"] == "nas_quick"
    assert info["plan"]["search"]["train"]["max_steps_per_epoch"] == 2  # the --nas-set overrides
    assert info["search"]["arch"]["blocks"] == json.loads((out / "archs" / "child.json").read_text())["blocks"]

    # an interrupted run picks up the finished cells: drop one cell's result and run again
    cells = sorted(out.glob("cells/*/*/seed_0/cell.json"))
    assert len(cells) == 2 * len(MODELS)
    dropped = cells[0]
    kept = {p: p.stat().st_mtime_ns for p in cells[1:]}
    dropped.unlink()
    (out / "claims.json").unlink()
    assert main(_argv(out)) == 0
    assert "continuing the reproduction" in capsys.readouterr().out
    assert dropped.is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert (out / "claims.json").is_file()
    # the finished search is read back by the search itself, so the resumed run reports it unchanged
    assert json.loads((out / "run_info.json").read_text())["search"] == info["search"]

    # another run's folder is not clobbered
    assert main(_argv(out, "--seeds", "3")) == 2
    assert "different recipe" in capsys.readouterr().err


def test_reproduce_with_a_given_arch_and_bad_options(tiny_env, capsys) -> None:
    spec = tiny_env / "arch.json"
    spec.write_text(json.dumps({"width": 1.0, "blocks": ["both", "none", "after", "inside", "none", "none"],
                                "conv1_in": True}))
    out = tiny_env / "given"
    argv = _argv(out, "--arch", str(spec), "--folds", "none")  # single-source cells only
    assert main(argv) == 0
    assert not (out / "search").exists()
    rows = json.loads((out / "claims.json").read_text())["results"]
    assert {r["setting"] for r in rows} == set(SETTINGS) - {"multi-source"}
    assert len(list(out.glob("cells/*/*/seed_0/cell.json"))) == len(MODELS)
    child = json.loads((out / "archs" / "child.json").read_text())
    assert child["blocks"] == ["both", "none", "after", "inside", "none", "none"]
    assert child["channels"][0] == 16  # built at the reproduction's width x0.25
    capsys.readouterr()
    assert main(["reproduce", "--set", "optim.lr=-1", "-o", str(tiny_env / "bad")]) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert main(["reproduce", "--seeds", "a,b", "-o", str(tiny_env / "bad2")]) == 2
    capsys.readouterr()
    assert main(["reproduce", "--search-recipe", "nas", "--arch", str(spec), "-o", str(tiny_env / "bad3")]) == 2
    assert "--arch skips the search" in capsys.readouterr().err
    assert main(["reproduce", "--search-recipe", "no_such_recipe", "-o", str(tiny_env / "bad4")]) == 2
    assert "no_such_recipe" in capsys.readouterr().err
    assert not any((tiny_env / f"bad{i}").exists() for i in (3, 4))


def test_folds_are_chosen_by_held_out_domain() -> None:
    from omnireid.cli.reproduce import _folds

    folds = ReproducePlan().benchmark.leave_one_out
    held = [h for _, h in folds]
    assert _folds("p4s4", folds) == (held.index("synthetic_p4s4"),)
    assert _folds("synthetic_p2s2, p4s4", folds) == tuple(sorted(held.index(f"synthetic_{d}") for d in ("p2s2", "p4s4")))
    with pytest.raises(ValueError, match="held-out domains"):
        _folds("p1s2", folds)  # a style target, not in the leave-one-out group
    with pytest.raises(ValueError, match="held-out domains"):
        _folds(",", folds)
    assert _folds("none", folds) == ()
