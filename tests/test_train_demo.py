"""`omnireid demo` end to end on tiny synthetic domains (the real demo runs longer)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from omnireid.cli.demo import DEMO_MODELS, chance_rank1, demo_recipe
from omnireid.data.records import Sample

TINY = {"num_ids": 24, "num_test_ids": 12, "num_distractors": 4, "num_junk": 0}


def test_demo_trains_both_models_and_reports_them_side_by_side(tmp_path, capsys) -> None:
    from omnireid.cli import main

    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    try:
        code = main(["demo", "--epochs", "2", "-o", str(out), "--no-tcmalloc",
                     "--set", f"data.root={tmp_path / 'cache'}", "--set", f"data.synthetic={json.dumps(TINY)}",
                     "--set", "data.batch_size=8", "--set", "data.num_workers=0",
                     "--set", "train.max_steps_per_epoch=2", "--set", "train.progress=false",
                     "--set", "train.num_threads=1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
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
    report = json.loads((out / "metrics.json").read_text())
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


def test_chance_rank1_counts_matches_among_the_images_ranked() -> None:
    def s(pid: int, cam: int) -> Sample:
        return Sample(f"{pid}_{cam}.jpg", pid, cam, 0)

    gallery = [s(1, 0), s(1, 1), s(2, 1), s(3, 1), s(4, 0)]
    # query (1, cam 0): gallery (1, cam 0) is left out; 1 match among 4 -> 1/4
    # query (2, cam 0): 1 match among 5 -> 1/5; query (5, cam 0) has no match and is skipped
    assert abs(chance_rank1([s(1, 0), s(2, 0), s(5, 0)], gallery) - (1 / 4 + 1 / 5) / 2) < 1e-12
