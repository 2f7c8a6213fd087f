"""A run folder belongs to one run; checkpoints are good before they are called good; data
problems are reported, not fatal; Ctrl-C and full disks end cleanly (issue: nothing lost,
nothing silent)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from omnireid.config import load_config
from omnireid.engine.checkpoint import load_checkpoint, non_finite_entries
from omnireid.engine.fit import fit
from omnireid.engine.run_folder import ORPHAN_WAIT_S, RunFolder
from omnireid.engine.train import NonFiniteLossError
from omnireid.errors import ConfigError, DataError, ImageError, OutputError, RunFolderError
from tests._robust_fixtures import tiny_train_recipe, write_manifest

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A training manifest (6 ids) and a test manifest (3 held-out ids as query/gallery)."""
    root = tmp_path_factory.mktemp("robust_data")
    train = write_manifest(root / "train", range(1, 7), name="train.csv")
    test = write_manifest(root / "test", range(0), test_ids=range(10, 13), name="test.csv")
    return {"train": train, "test": test}


def cfg_for(paths, out, **sections):
    recipe = tiny_train_recipe(out, [{"name": "csv_manifest", "root": str(paths["train"])}],
                               [{"name": "csv_manifest", "root": str(paths["test"]), "as": "held_out"}], **sections)
    return load_config(None, base=recipe)


def all_finite(path) -> bool:
    state = load_checkpoint(path)
    return not non_finite_entries({"model": state["model"], "optimizer": state["optimizer"]})


# ---------------------------------------------------------------------------------------------
# run folders


def test_a_second_writer_is_refused_naming_the_holder(data, tmp_path):
    out = tmp_path / "run"
    with RunFolder(out, command="omnireid train -c first.yaml"):
        with pytest.raises(RunFolderError, match=r"in use by another run \(pid \d+, `omnireid train -c first.yaml`"):
            fit(cfg_for(data, out))
    assert not (out / "config.yaml").exists()
    fit(cfg_for(data, out, train={"max_epoch": 1}))  # the lock went with its holder


def test_a_killed_runs_forked_children_do_not_keep_its_folder_locked(tmp_path):
    # the run forks a child (as a data loader forks its workers) that outlives it; the lock must
    # go with the run, not wait for the child: waiting at most ORPHAN_WAIT_S would pass too, so
    # the check is that the folder is free well before that
    out = tmp_path / "run"
    script = (
        "import os, sys, time\n"
        "from omnireid.engine.run_folder import RunFolder\n"
        f"held = RunFolder({str(out)!r}, command='killed run').acquire()\n"
        "child = os.fork()\n"
        "if child == 0:\n"
        "    null = os.open(os.devnull, os.O_RDWR)\n"
        "    os.dup2(null, 1)\n"
        "    os.dup2(null, 2)\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "print(child, flush=True)\n"
        "os.kill(os.getpid(), 9)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    orphan = int(done.stdout.split()[0])
    try:
        start = time.monotonic()
        RunFolder(out, command="the resumed run").acquire().release()
        assert time.monotonic() - start < ORPHAN_WAIT_S / 3
    finally:
        try:
            os.kill(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_finished_run_is_not_replaced_without_overwrite(data, tmp_path):
    out = tmp_path / "run"
    fit(cfg_for(data, out, train={"max_epoch": 1}))
    before = {name: (out / name).read_bytes() for name in ("best.pt", "model.pth", "config.yaml", "summary.json")}
    with pytest.raises(RunFolderError, match=r"already holds a run \(finished, 1 epochs\).*--resume.*--overwrite"):
        fit(cfg_for(data, out, train={"seed": 22}))
    assert {name: (out / name).read_bytes() for name in before} == before
    fit(cfg_for(data, out, train={"seed": 22, "max_epoch": 1}), overwrite=True)
    assert load_config(out / "config.yaml").train.seed == 22


@pytest.mark.parametrize("change, named", [
    ({"model": {"name": "osnet_ain_x0_25"}}, "model.name 'osnet_x0_25' -> 'osnet_ain_x0_25'"),
    ({"optim": {"name": "sgd"}}, "optim.name 'amsgrad' -> 'sgd'"),
    ({"data": {"batch_size": 4}}, "data.batch_size 8 -> 4"),
])
def test_resume_refuses_incompatible_changes_before_writing(data, tmp_path, change, named):
    out = tmp_path / "run"
    fit(cfg_for(data, out, train={"max_epoch": 1}))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".omnireid.lock"}
    with pytest.raises(ConfigError, match="cannot change in the middle of a run") as err:
        fit(cfg_for(data, out, train={"max_epoch": 2}, **change), resume=out)
    assert named in str(err.value)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".omnireid.lock"}
    assert after == before


def test_resume_applies_a_new_learning_rate(data, tmp_path):
    out = tmp_path / "run"
    fit(cfg_for(data, out, train={"max_epoch": 1}))
    seen = []
    result = fit(cfg_for(data, out, optim={"lr": 0.1}), resume=out, on_start=seen.append)
    assert seen[0]["changes"] == [("optim.lr", 0.003, 0.1), ("train.max_epoch", 1, 2)]
    assert seen[0]["start_epoch"] == 1
    assert [r["lr"] for r in result.history] == [0.003, 0.1]
    assert load_checkpoint(out / "last.pt")["optimizer"]["param_groups"][0]["initial_lr"] == 0.1
    assert load_config(out / "config.yaml").optim.lr == 0.1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_with_changes"] == [{"key": "optim.lr", "old": 0.003, "new": 0.1},
                                               {"key": "train.max_epoch", "old": 1, "new": 2}]


def test_resume_of_a_run_that_stopped_before_its_first_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("{}\n")
    with pytest.raises(FileNotFoundError, match="nothing to resume.*last.pt"):
        fit(cfg_for(data, out), resume=out)


def test_stale_temporary_files_are_removed_on_the_next_start(data, tmp_path):
    out = tmp_path / "run"
    fit(cfg_for(data, out, train={"max_epoch": 1}))
    stale = [out / ".last.pt.999999.tmp", out / ".summary.json.999998.tmp.json"]
    for path in stale:
        path.write_bytes(b"torn")
    fit(cfg_for(data, out, train={"max_epoch": 2}), resume=out)
    assert not any(p.exists() for p in stale)
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


# ---------------------------------------------------------------------------------------------
# non-finite values


def test_poisoned_batchnorm_statistics_stop_the_run_and_are_never_saved(data, tmp_path, monkeypatch):
    """A training-mode forward can make BatchNorm's running statistics infinite while the loss is
    still finite (the loss uses the batch statistics); the run stops at that step and the last
    checkpoint stays the previous epoch's, all finite."""
    from omnireid.engine import fit as fit_module

    out = tmp_path / "run"
    calls = {"n": 0}
    real = fit_module.build_model

    def build(cfg, num_classes):
        model = real(cfg, num_classes)
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))

        def hook(module, inputs, output):
            if module.training:
                calls["n"] += 1
                if calls["n"] == 3:  # epoch 2, step 1
                    module.running_var.data.fill_(float("inf"))  # as an overflowing update would

        bn.register_forward_hook(hook)
        return model

    monkeypatch.setattr(fit_module, "build_model", build)
    with pytest.raises(NonFiniteLossError) as err:
        fit(cfg_for(data, out, train={"eval_freq": -1}))
    msg = str(err.value)
    assert "BatchNorm statistic" in msg and "running_" in msg and "epoch 2, step 1" in msg
    assert f"The last good checkpoint is {out / 'last.pt'} (1 epoch(s) done, all values finite)" in msg
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and all_finite(out / "last.pt")
    assert not (out / "model.pth").exists()


def test_a_non_finite_gradient_stops_before_the_step(data, tmp_path, monkeypatch):
    from omnireid.models import osnet

    out = tmp_path / "run"
    calls = {"n": 0}
    real = osnet.OSNet.forward

    def forward(self, x):
        result = real(self, x)
        calls["n"] += 1
        if self.training and calls["n"] == 4:  # epoch 2, step 2
            self.conv1.conv.weight.register_hook(lambda g: g * float("nan"))
        return result

    monkeypatch.setattr(osnet.OSNet, "forward", forward)
    with pytest.raises(NonFiniteLossError, match=r"gradient of conv1\.conv\.weight is not finite.*epoch 2, step 2"):
        fit(cfg_for(data, out, train={"eval_freq": -1}))
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and all_finite(out / "last.pt")


def test_weights_made_non_finite_by_the_last_step_are_not_saved(data, tmp_path, monkeypatch):
    from omnireid.engine import fit as fit_module

    out = tmp_path / "run"
    real = fit_module.train_one_epoch

    def train_one_epoch(model, loader, criterion, optimizer, **kw):
        stats = real(model, loader, criterion, optimizer, **kw)
        if kw["epoch"] == 1:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("inf")
        return stats

    monkeypatch.setattr(fit_module, "train_one_epoch", train_one_epoch)
    with pytest.raises(NonFiniteLossError, match=r"after epoch 2 1 tensor\(s\).*conv1\.conv\.weight.*no checkpoint "
                                                 r"was written.*last good checkpoint is .*last.pt \(1 epoch"):
        fit(cfg_for(data, out, train={"eval_freq": -1}))
    assert load_checkpoint(out / "last.pt")["epoch"] == 1


def test_a_huge_learning_rate_never_leaves_a_non_finite_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="training stopped"):
        fit(cfg_for(data, out, optim={"lr": 1e6}, train={"max_epoch": 6, "max_steps_per_epoch": 3, "eval_freq": -1}))
    for name in ("last.pt", "best.pt"):
        if (out / name).exists():
            assert all_finite(out / name), name


# ---------------------------------------------------------------------------------------------
# data problems


def _corrupt(manifest, index: int):
    rows = manifest.read_text().splitlines()
    rel = rows[index].split(",")[0]
    (manifest.parent / rel).write_bytes(b"\xff\xd8 this is not a JPEG")
    return rel


def test_unreadable_images_are_skipped_listed_and_counted(tmp_path):
    train = write_manifest(tmp_path / "train", range(1, 7), name="train.csv")
    test = write_manifest(tmp_path / "test", range(0), test_ids=range(10, 13), name="test.csv")
    bad_train, bad_query = _corrupt(train, 1), _corrupt(test, 1)
    out = tmp_path / "run"
    recipe = tiny_train_recipe(out, [{"name": "csv_manifest", "root": str(train)}],
                               [{"name": "csv_manifest", "root": str(test)}],
                               train={"max_steps_per_epoch": 0, "max_epoch": 1})
    result = fit(load_config(None, base=recipe))
    listed = (out / "skipped_images.tsv").read_text().splitlines()
    assert listed[0] == "path\treason" and len(listed) == 3
    assert {line.split("\t")[0].rsplit("/", 2)[-2:][-1] for line in listed[1:]} == \
        {bad_train.rsplit("/", 1)[1], bad_query.rsplit("/", 1)[1]}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_images"] == 2
    assert result.final["csv_manifest"]["skipped_images"] == 1
    recipe["data"]["on_bad_image"] = "error"
    with pytest.raises(ImageError, match=bad_train.rsplit("/", 1)[1]):
        fit(load_config(None, base=recipe), overwrite=True)


def test_targets_are_resolved_and_checked_before_training(data, tmp_path):
    out = tmp_path / "run"
    only_train = write_manifest(tmp_path / "t", range(20, 23), name="t.csv")
    recipe = tiny_train_recipe(out, [{"name": "csv_manifest", "root": str(data["train"])}],
                               ["csv_manifest", {"name": "market1501", "root": str(tmp_path / "nowhere")}])
    recipe["data"]["targets"][0] = {"name": "csv_manifest", "root": str(only_train)}
    with pytest.raises(DataError, match=r"data.targets\[0\] 'csv_manifest' .*t.csv.* has 0 query and 0 gallery"):
        fit(load_config(None, base=recipe))
    recipe["data"]["targets"] = recipe["data"]["targets"][1:]
    with pytest.raises(FileNotFoundError, match="nowhere/market1501"):
        fit(load_config(None, base=recipe))
    assert not (out / "last.pt").exists() and not (out / "config.yaml").exists()


# ---------------------------------------------------------------------------------------------
# interruptions and failed writes


def test_ctrl_c_names_the_last_checkpoint_and_releases_the_folder(data, tmp_path, monkeypatch):
    from omnireid.engine import fit as fit_module

    out = tmp_path / "run"
    real = fit_module.train_one_epoch

    def train_one_epoch(*args, **kw):
        if kw["epoch"] == 1:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(fit_module, "train_one_epoch", train_one_epoch)
    with pytest.raises(KeyboardInterrupt) as err:
        fit(cfg_for(data, out))
    assert str(err.value.args[0]) == (f"interrupted in epoch 2 of 2. The last good checkpoint is {out / 'last.pt'} "
                                      "(1 epoch(s) done, all values finite); continue from it with --resume.")
    RunFolder(out).acquire().release()


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file(data, tmp_path, monkeypatch):
    from omnireid import files

    out = tmp_path / "run"
    fit(cfg_for(data, out, train={"max_epoch": 1}))
    before = (out / "last.pt").read_bytes()

    def full(self, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files._RecordingWriter, "write", full)
    with pytest.raises(OutputError, match=f"cannot write {out / 'last.pt'}: no space left on the device"):
        fit(cfg_for(data, out, train={"max_epoch": 2}), resume=out)
    assert (out / "last.pt").read_bytes() == before
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
