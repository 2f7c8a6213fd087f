"""`omnireid demo` end to end on tiny synthetic domains (the real demo runs longer)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.test_train_fit import TINY_SYNTHETIC, syn_root  # noqa: F401


def test_demo_trains_evaluates_and_writes_a_report(syn_root, tmp_path, capsys) -> None:  # noqa: F811
    from omnireid.cli import main

    out = tmp_path / "demo"
    threads = torch.get_num_threads()
    try:
        code = main(["demo", "--epochs", "2", "-o", str(out), "--no-tcmalloc",
                     "--set", f"data.root={syn_root}", "--set", f"data.synthetic={json.dumps(TINY_SYNTHETIC)}",
                     "--set", "data.height=64", "--set", "data.width=32", "--set", "data.batch_size=16",
                     "--set", "data.num_workers=0", "--set", "train.max_steps_per_epoch=2",
                     "--set", "train.eval_freq=1", "--set", "train.progress=false", "--set", "train.num_threads=1"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    printed = capsys.readouterr().out
    assert "synthetic_a" in printed and "synthetic_b" in printed and "rank-1" in printed
    assert f"report folder: {out.resolve()}" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["results"]) == {"synthetic_a", "synthetic_b"}
    for metrics in report["results"].values():
        assert 0.0 <= metrics["rank1"] <= 1.0 and 0.0 <= metrics["mAP"] <= 1.0
    assert (out / "curves.png").stat().st_size > 1000
    pictures = report["files"]["ranked_lists"]["synthetic_b"]
    assert pictures and all(Path(p).is_file() for p in pictures)
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r["eval"]) for r in history] == [["synthetic_a", "synthetic_b"]] * 2
