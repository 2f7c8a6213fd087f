"""End-to-end training on tiny synthetic data: outputs, resume after kill -9, NaN stop, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from omnireid.config import load_config
from omnireid.engine.checkpoint import load_checkpoint
from omnireid.engine.fit import fit
from omnireid.engine.train import NonFiniteLossError
from tests._robust_fixtures import write_recipe

SRC = str(Path(__file__).resolve().parents[1] / "src")
TINY_SYNTHETIC = {"num_ids": 24, "num_distractors": 4, "num_junk": 0}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="session")
def syn_root(tmp_path_factory) -> Path:
    """A cache with two tiny synthetic domains (12 training ids, ~100 images each)."""
    from omnireid.data import load_dataset

    root = tmp_path_factory.mktemp("synthetic")
    for name in ("synthetic_a", "synthetic_b"):
        load_dataset(name, root, **TINY_SYNTHETIC)
    return root


def tiny_recipe(root: Path, out: Path, **sections) -> dict:
    """A recipe that trains osnet_x0_25 at 64x32 for a few short epochs."""
    recipe = {
        "model": {"name": "osnet_x0_25"},
        "data": {"root": str(root), "sources": ["synthetic_a"], "targets": ["synthetic_a"],
                 "height": 64, "width": 32, "batch_size": 16, "sampler": "identity", "num_instances": 4,
                 "num_workers": 0, "random_flip": True, "random_erase": True, "synthetic": TINY_SYNTHETIC},
        "loss": {"softmax": 1.0, "triplet": 1.0},
        "optim": {"name": "amsgrad", "lr": 0.003, "fixbase_epochs": 1},
        "sched": {"name": "single_step", "stepsize": [2]},
        "train": {"max_epoch": 3, "max_steps_per_epoch": 3, "output_dir": str(out), "progress": False,
                  "eval_freq": -1, "num_threads": 1, "channels_last": False},
    }
    for section, values in sections.items():
        recipe.setdefault(section, {}).update(values)
    return recipe


def child_env() -> dict:
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1", OMNIREID_NO_TCMALLOC="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_fit_writes_all_outputs(syn_root, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = load_config(None, base=tiny_recipe(syn_root, out, train={"max_epoch": 2}))
    result = fit(cfg)
    for name in ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", "model.pth", "curves.png", "summary.json"):
        assert (out / name).is_file(), name
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1] and records[0]["fixbase"] and not records[1]["fixbase"]
    assert load_config(out / "config.yaml") == cfg
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 2 and result.epochs == 2
    from omnireid.models import create_model

    again = create_model("osnet_x0_25", num_classes=12, weights=out / "model.pth")
    assert torch.equal(again.state_dict()["fc.0.weight"], result.model.state_dict()["fc.0.weight"])


def test_kill9_then_resume_gives_the_same_weights(syn_root, tmp_path) -> None:
    """A run killed with SIGKILL during epoch 2 and resumed ends bit-identical to an uninterrupted run.

    Augmentation (flip + erase) runs in a loader worker whose seed is drawn from the loader's
    generator each epoch, so the restored generator state decides the resumed epochs' images."""
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    steps = {"max_epoch": 3, "max_steps_per_epoch": 6}
    data = {"num_workers": 1}
    ref = write_recipe(tmp_path / "ref.yaml", tiny_recipe(syn_root, ref_out, train=steps, data=data))
    cut = write_recipe(tmp_path / "cut.yaml", tiny_recipe(syn_root, cut_out, train=steps, data=data))
    cmd = [sys.executable, "-m", "omnireid", "train", "-c"]
    proc = subprocess.Popen([*cmd, str(cut)], env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (cut_out / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "first checkpoint never appeared"
        time.sleep(0.005)
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    state = load_checkpoint(cut_out / "last.pt")
    assert state["epoch"] == 1, "the kill must land during epoch 2"
    assert not (cut_out / "model.pth").exists()

    # resume and the uninterrupted reference run in this process (same single thread)
    fit(load_config(cut), resume=cut_out)
    fit(load_config(ref))

    a = torch.load(ref_out / "model.pth", weights_only=True)
    b = torch.load(cut_out / "model.pth", weights_only=True)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    sa, sb = load_checkpoint(ref_out / "last.pt"), load_checkpoint(cut_out / "last.pt")
    for k, v in sa["optimizer"]["state"].items():
        for name, t in v.items():
            assert torch.equal(t, sb["optimizer"]["state"][k][name]), (k, name)
    la = [json.loads(x)["loss"] for x in (ref_out / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (cut_out / "metrics.jsonl").read_text().splitlines()]
    assert la == lb and len(la) == 3


def test_nan_loss_stops_and_keeps_last_good_checkpoint(syn_root, tmp_path, monkeypatch) -> None:
    from omnireid import losses

    out = tmp_path / "nan"
    cfg = load_config(None, base=tiny_recipe(syn_root, out))
    calls = {"n": 0}
    real = losses.CrossEntropyLabelSmooth.forward

    def poisoned(self, logits, targets):
        calls["n"] += 1
        value = real(self, logits, targets)
        return value * float("nan") if calls["n"] > 4 else value  # epoch 2, step 2

    monkeypatch.setattr(losses.CrossEntropyLabelSmooth, "forward", poisoned)
    with pytest.raises(NonFiniteLossError) as err:
        fit(cfg)
    msg = str(err.value)
    assert "nan" in msg and "epoch 2, step 2" in msg and str(out / "last.pt") in msg
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "model.pth").exists()


def test_cli_train_with_searched_arch_and_overrides(syn_root, tmp_path, capsys) -> None:
    from omnireid.cli import main
    from omnireid.models.arch import make_arch

    spec = tmp_path / "child.json"
    make_arch(0.25, ["inside", "none", "after", "both", "none", "inside"], conv1_in=True).save(spec)
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(syn_root, tmp_path / "unused"))
    out = tmp_path / "arch_run"
    code = main(["train", "-c", str(recipe), "--set", f"model.arch={spec}", "--set", "train.max_epoch=1",
                 "--set", "optim.name=sgd", "--set", "optim.lr=0.01", "--set", "sched.name=cosine", "-o", str(out)])
    assert code == 0
    assert str(out) in capsys.readouterr().out
    saved = load_config(out / "config.yaml")
    assert saved.model.arch == str(spec) and saved.optim.name == "sgd"
    from omnireid.models import create_model

    create_model("osnet", num_classes=12, arch=spec, weights=out / "model.pth")  # loads: same architecture


def test_cli_train_unknown_key_is_a_clear_error(tmp_path, capsys) -> None:
    from omnireid.cli import main

    assert main(["train", "--set", "optim.lerning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "optim.lerning_rate" in err and "Valid keys" in err
