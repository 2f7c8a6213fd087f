"""`omnireid demo` end to end on tiny synthetic domains (the real demo runs longer)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from omnireid.cli.demo import DEMO_MODELS, chance_rank1, demo_jobs, demo_recipe, demo_threads
from omnireid.data.records import Sample

TINY = {"num_ids": 24, "num_test_ids": 12, "num_distractors": 4, "num_junk": 0}


def _tiny_demo(out: Path, cache: Path, jobs: int | None = None, expect: int = 0) -> dict:
    """The demo on tiny domains, 2 epochs of 2 steps, one torch thread per model; ``jobs`` None:
    the command's default."""
    from omnireid.cli import main

    threads = torch.get_num_threads()
    argv = ["demo", "--epochs", "2", "-o", str(out), "--no-tcmalloc",
            "--set", f"data.root={cache}", "--set", f"data.synthetic={json.dumps(TINY)}",
            "--set", "data.batch_size=8", "--set", "data.num_workers=0",
            "--set", "train.max_steps_per_epoch=2", "--set", "train.progress=false",
            "--set", "train.num_threads=1"]
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    try:
        code = main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == expect
    return json.loads((out / "metrics.json").read_text()) if code == 0 else {}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("demo_cache")


@pytest.fixture(scope="module")
def one_after_the_other(tmp_path_factory, cache) -> dict:
    """The models trained one after the other in the test's process (``--jobs 1``)."""
    return _tiny_demo(tmp_path_factory.mktemp("inline") / "demo", cache, jobs=1)


def test_demo_trains_both_models_and_reports_them_side_by_side(tmp_path, cache, one_after_the_other,
                                                                capsys) -> None:
    out = tmp_path / "demo"
    capsys.readouterr()
    report = _tiny_demo(out, cache)
    printed = capsys.readouterr().out
    targets = demo_recipe()["data"]["targets"]
    assert f"report folder: {out.resolve()}" in printed
    table = printed[printed.index("target"):]
    for model in DEMO_MODELS:
        assert f"{model} r1 %" in table
    # one row per target, labelled with what differs from the training domain
    labels = {"synthetic_p1s1": "seen (trained on)", "synthetic_p1s3": "style shift",
              "synthetic_p2s1": "population shift", "synthetic_p3s3": "both shift"}
    rows = [line for line in table.splitlines() if line.startswith("synthetic_")]
    assert [r.split()[0] for r in rows] == targets
    for row in rows:
        assert labels[row.split()[0]] in row
    assert report == json.loads((out / "metrics.json").read_text())
    assert list(report["models"]) == list(DEMO_MODELS)
    for model, entry in report["models"].items():
        assert set(entry["results"]) == set(targets)
        for metrics in entry["results"].values():
            assert 0.0 <= metrics["rank1"] <= 1.0 and 0.0 <= metrics["mAP"] <= 1.0
        assert (out / model / "curves.png").stat().st_size > 1000
        assert (out / model / "model.pth").is_file()
        pictures = entry["files"]["ranked_lists"]["synthetic_p3s3"]
        assert pictures and all(Path(p).is_file() for p in pictures)
        assert len(entry["history"]) == 2
    # the two models really differ (instance normalisation or not), trained with the same recipe
    cfgs = [(out / m / "config.yaml").read_text() for m in DEMO_MODELS]
    assert cfgs[0] != cfgs[1] and cfgs[0].replace(DEMO_MODELS[0], DEMO_MODELS[1]) == cfgs[1]
    for info in report["targets"].values():
        assert 0.0 < info["chance_rank1"] < 0.5
    # by default one process per model up to the CPU count; each model's numbers are those of
    # the same recipe, seed and thread count trained in this process (both computed here, so
    # compared exactly), and the two models differ, so the comparison can fail
    assert report["jobs"] == min(2, os.cpu_count() or 1) and one_after_the_other["jobs"] == 1
    for model in DEMO_MODELS:
        assert report["models"][model]["results"] == one_after_the_other["models"][model]["results"]
        assert [h["loss"] for h in report["models"][model]["history"]] == \
            [h["loss"] for h in one_after_the_other["models"][model]["history"]]
    assert report["targets"] == one_after_the_other["targets"]
    a, b = (report["models"][m]["history"][-1]["loss"] for m in DEMO_MODELS)
    assert a != b


def test_an_interrupted_demo_continues_where_it_stopped(tmp_path, cache, one_after_the_other, monkeypatch,
                                                        capsys) -> None:
    import omnireid.cli.demo as demo

    real_line = demo.epoch_line

    def interrupt_after_first_epoch(record: dict) -> str:
        raise KeyboardInterrupt

    out = tmp_path / "demo"
    monkeypatch.setattr(demo, "epoch_line", interrupt_after_first_epoch)
    _tiny_demo(out, cache, jobs=1, expect=130)
    assert not (out / "metrics.json").exists() and (out / DEMO_MODELS[0] / "last.pt").is_file()
    monkeypatch.setattr(demo, "epoch_line", real_line)
    capsys.readouterr()
    again = _tiny_demo(out, cache, jobs=1)
    assert f"continuing the interrupted run in {out / DEMO_MODELS[0]}" in capsys.readouterr().out
    for model in DEMO_MODELS:
        assert again["models"][model]["results"] == one_after_the_other["models"][model]["results"]
        assert len(again["models"][model]["history"]) == 2


def test_jobs_and_threads_share_the_cpus() -> None:
    assert demo_jobs(0, 2, 2) == 2        # one process per model on two CPUs
    assert demo_jobs(0, 2, 1) == 1        # one CPU: one after the other
    assert demo_jobs(0, 3, 2) == 2        # never more processes than CPUs
    assert demo_jobs(5, 2, 16) == 2       # never more processes than models
    assert demo_jobs(1, 2, 16) == 1
    # two CPUs, one loader worker per model: one thread whether side by side or not, so the
    # numbers are the same either way
    assert demo_threads(2, 2, 1) == demo_threads(1, 2, 1) == 1
    assert demo_threads(2, 16, 1) == 7
    assert demo_threads(1, 16, 0) == 16
    assert demo_threads(4, 2, 0) == 1     # at least one


def test_a_model_named_twice_is_refused(capsys) -> None:
    from omnireid.cli import main

    assert main(["demo", "--models", "osnet_x0_25,osnet_x0_25", "--no-tcmalloc"]) == 2
    assert "each model once" in capsys.readouterr().err


def test_chance_rank1_counts_matches_among_the_images_ranked() -> None:
    def s(pid: int, cam: int) -> Sample:
        return Sample(f"{pid}_{cam}.jpg", pid, cam, 0)

    gallery = [s(1, 0), s(1, 1), s(2, 1), s(3, 1), s(4, 0)]
    # query (1, cam 0): gallery (1, cam 0) is left out; 1 match among 4 -> 1/4
    # query (2, cam 0): 1 match among 5 -> 1/5; query (5, cam 0) has no match and is skipped
    assert abs(chance_rank1([s(1, 0), s(2, 0), s(5, 0)], gallery) - (1 / 4 + 1 / 5) / 2) < 1e-12
