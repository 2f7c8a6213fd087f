"""Cross-domain training with your own data: one `omnireid train` run trains on a CSV manifest and
evaluates on a second manifest and a Market-1501 folder, each under its own root and reported
under its display name; each epoch leaves one line a person can read."""

from __future__ import annotations

import json
import re

import pytest

from omnireid.cli import main
from tests._robust_fixtures import tiny_train_recipe, write_manifest, write_market1501, write_recipe

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \d+\.\d{4}  acc +\d+\.\d%  lr \d\.\d\de-\d\d  \d+ img/s  "
                        r"train \S+(  eval \S+)?  ETA \S+")


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    root = tmp_path_factory.mktemp("sites")
    return {
        "a": write_manifest(root / "site_a", range(1, 7), name="a.csv"),
        "b": write_manifest(root / "elsewhere" / "site_b", range(0), test_ids=range(30, 34), name="b.csv"),
        "market": write_market1501(root / "datasets", range(1, 4), range(40, 43)),
    }


def test_train_on_one_manifest_evaluate_on_another_and_a_market_folder(sites, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "cross.yaml", tiny_train_recipe(
        out,
        sources=[{"name": "csv_manifest", "root": str(sites["a"]), "as": "siteA"}],
        targets=[{"name": "csv_manifest", "root": str(sites["b"]), "as": "siteB"},
                 {"name": "market1501", "root": str(sites["market"]), "as": "market"}],
        train={"eval_freq": 1}))
    assert main(["train", "-c", str(recipe)]) == 0
    printed = capsys.readouterr().out.splitlines()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"] == ["siteA"] and summary["targets"] == ["siteB", "market"]
    assert list(summary["final"]) == ["siteB", "market"]
    for metrics in summary["final"].values():
        assert 0.0 <= metrics["rank1"] <= 1.0 and 0.0 <= metrics["mAP"] <= 1.0
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(r["eval"]) for r in history] == [["market", "siteB"]] * 2
    # output redirected (captured): no progress bar, one line per epoch, then the results
    epochs = [line for line in printed if EPOCH_LINE.match(line)]
    assert [EPOCH_LINE.match(line).group(1) for line in epochs] == ["1", "2"]
    assert all("| siteB R1" in line and "| market R1" in line for line in epochs)
    assert printed[0].startswith("training osnet_x0_25 on siteA (24 images, 6 identities) for 2 epochs; "
                                 "evaluating on siteB, market")
    assert not any("\r" in line or "it/s" in line for line in printed)
    assert any(line.startswith("siteB ") for line in printed) and any(line.startswith("market ") for line in printed)


def test_quiet_silences_the_epoch_lines(sites, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_train_recipe(
        out, [{"name": "csv_manifest", "root": str(sites["a"])}], ["synthetic_a"], train={"eval_freq": -1}))
    assert main(["train", "-c", str(recipe), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/2" not in printed and "training osnet_x0_25" not in printed
    assert f"outputs in {out}" in printed


BATCH_LINE = re.compile(r"^epoch (\d+)/2  batch (\d+)/(\d+)  loss \d+\.\d{4}  acc +\d+\.\d%  lr \d\.\d\de-\d\d  "
                        r"\d+ img/s  epoch ETA (\S+)  ETA (\S+)$")


def test_print_freq_adds_lines_with_an_eta_when_not_on_a_terminal(sites, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", tiny_train_recipe(
        out, [{"name": "csv_manifest", "root": str(sites["a"])}], ["synthetic_a"],
        train={"eval_freq": -1, "max_steps_per_epoch": 3, "print_freq": 1}))
    assert main(["train", "-c", str(recipe)]) == 0
    printed = capsys.readouterr().out.splitlines()
    batches = [BATCH_LINE.match(line) for line in printed if line.startswith("epoch ") and "batch" in line]
    assert all(batches) and batches
    # a line after batches 1 and 2 of each 3-batch epoch (after the last one the epoch line follows)
    assert [(m.group(1), m.group(2), m.group(3)) for m in batches] == [
        ("1", "1", "3"), ("1", "2", "3"), ("2", "1", "3"), ("2", "2", "3")]
    assert [EPOCH_LINE.match(line).group(1) for line in printed if EPOCH_LINE.match(line)] == ["1", "2"]
    order = [("batch" if "batch" in line else "epoch") for line in printed if line.startswith("epoch ")]
    assert order == ["batch", "batch", "epoch", "batch", "batch", "epoch"]
    assert main(["train", "-c", str(recipe), "--overwrite", "--quiet"]) == 0
    assert "batch 1/3" not in capsys.readouterr().out


def test_eval_takes_the_same_dataset_forms(sites, tmp_path, capsys):
    out = tmp_path / "eval"
    data = (f"[{{name: csv_manifest, root: {sites['b']}, as: siteB}}, "
            f"{{name: market1501, root: {sites['market']}, as: market}}]")
    assert main(["eval", "--model", "osnet_x0_25", "--size", "64x32", "--num-vis", "1", "--data", data,
                 "--output", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["targets"]) == ["siteB", "market"]
    assert (out / "ranked" / "siteB").is_dir() and (out / "ranked" / "market").is_dir()
    assert "cross-domain" in capsys.readouterr().out


def test_on_a_terminal_the_bar_goes_and_each_epoch_line_stays(sites, tmp_path):
    """Run `omnireid train` with its output on a pseudo-terminal and replay what a terminal shows."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    out = tmp_path / "run"
    recipe = tiny_train_recipe(out, [{"name": "csv_manifest", "root": str(sites["a"])}], ["synthetic_a"],
                               train={"eval_freq": -1, "max_steps_per_epoch": 3, "progress": True})
    write_recipe(tmp_path / "r.yaml", recipe)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))  # 40 rows, 160 columns
    env = dict(os.environ, OMNIREID_NO_TCMALLOC="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "omnireid", "train", "-c", str(tmp_path / "r.yaml")],
                            stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env)
    os.close(follower)
    raw = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0, raw.decode(errors="replace")
    text = raw.decode(errors="replace")
    assert "batch/s" in text or "s/batch" in text  # the bar was drawn on the terminal
    # what stays on the screen: for each line, what follows the last carriage return, with
    # tqdm's cursor/erase sequences removed
    screen = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line.split("\r")[-1]).rstrip()
              for line in text.replace("\r\n", "\n").split("\n")]
    kept = [line for line in screen if EPOCH_LINE.match(line)]
    assert [EPOCH_LINE.match(line).group(1) for line in kept] == ["1", "2"]
    assert not any("batch/s" in line or "s/batch" in line for line in screen)  # no bar left behind
