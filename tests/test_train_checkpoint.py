"""Checkpoint files: atomic under SIGKILL, safe loading, complete RNG state."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from omnireid.engine.checkpoint import (
    CheckpointError,
    atomic_torch_save,
    load_checkpoint,
    rng_state,
    set_rng_state,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")

WRITER = textwrap.dedent("""
    import sys, torch
    from omnireid.engine.checkpoint import atomic_torch_save
    path = sys.argv[1]
    i = 0
    while True:
        atomic_torch_save({"model": {"w": torch.full((1_000_000,), float(i))}, "epoch": i}, path)
        print(i, flush=True)
        i += 1
""")


def test_atomic_write_survives_kill9(tmp_path) -> None:
    """Kill a process that rewrites a 4 MB checkpoint in a loop at several moments: the file
    on disk is always one complete checkpoint."""
    path = tmp_path / "last.pt"
    env = dict(os.environ, PYTHONPATH=SRC, OMP_NUM_THREADS="1")
    seen_epochs = []
    for delay in (0.0, 0.013, 0.031):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(3):  # let it write a few times, then kill it somewhere inside a write
            assert proc.stdout.readline(), "writer died"
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = load_checkpoint(path)
        w = state["model"]["w"]
        assert w.shape == (1_000_000,) and torch.all(w == float(state["epoch"]))
        seen_epochs.append(state["epoch"])
    assert all(e >= 2 for e in seen_epochs)


def test_torn_or_foreign_file_is_a_clear_error(tmp_path) -> None:
    good = atomic_torch_save({"model": {"w": torch.ones(1000)}, "epoch": 1}, tmp_path / "good.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="torn.pt: cannot read checkpoint"):
        load_checkpoint(torn)
    other = atomic_torch_save({"w": torch.ones(2)}, tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="not an omnireid training checkpoint"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_round_trip_through_a_file(tmp_path) -> None:
    gen = torch.Generator().manual_seed(5)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.randn()  # leave a cached Gaussian in NumPy's state
    atomic_torch_save({"model": {}, "epoch": 0, "rng": rng_state(gen)}, tmp_path / "s.pt")

    def draw():
        return (random.random(), np.random.randn(), torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist())

    first = draw()
    draw()
    set_rng_state(load_checkpoint(tmp_path / "s.pt")["rng"], gen)
    assert draw() == first


def test_resume_changes_treat_a_setting_newer_than_the_checkpoint_as_its_default() -> None:
    from omnireid.config import Config
    from omnireid.engine.checkpoint import resume_changes

    defaults = Config().to_dict()
    saved = Config().to_dict()
    del saved["train"]["print_freq"]  # a checkpoint written before the setting existed
    del saved["data"]["num_instances"]
    assert resume_changes(saved, Config().to_dict(), defaults) == ([], [])
    new = Config().to_dict()
    new["train"]["print_freq"] = 25
    new["data"]["num_instances"] = defaults["data"]["num_instances"] + 2
    allowed, refused = resume_changes(saved, new, defaults)
    assert allowed == [("train.print_freq", None, 25)]
    assert refused == [("data.num_instances", None, defaults["data"]["num_instances"] + 2)]
    # without the defaults every missing setting is a change
    assert resume_changes(saved, Config().to_dict())[1] == [("data.num_instances", None,
                                                               defaults["data"]["num_instances"])]


def test_a_read_only_destination_names_the_path_and_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    import errno
    import os

    from omnireid.errors import OutputError
    from omnireid.files import write_text

    target = tmp_path / "run" / "summary.json"
    write_text(target, "old")
    real_replace = os.replace

    def read_only(src, dst):  # the rename is where a read-only file system says no
        raise OSError(errno.EROFS, "Read-only file system", str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OutputError, match=rf"cannot write {target}: the file system is read-only"):
        write_text(target, "new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["summary.json"]
