"""One error style at the command line: the library's errors end with one line naming the file
or option and a non-zero status; a bug keeps its traceback; option values are checked where they
are parsed; Ctrl-C ends cleanly."""

from __future__ import annotations

import argparse
import errno

import pytest
import torch

from omnireid.cli import main
from omnireid.models import create_model, save_weights


def error_of(argv, capsys, code=2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    command = argv[0]
    assert err.startswith(f"omnireid {command}: error: "), err
    return err


def test_a_bug_keeps_its_traceback(monkeypatch):
    from omnireid.cli import models

    def broken(args):
        raise KeyError("a programming error")

    monkeypatch.setattr(models, "run", broken)
    with pytest.raises(KeyError, match="a programming error"):
        main(["models"])


def test_ctrl_c_ends_with_status_130_and_its_message(monkeypatch, capsys):
    from omnireid.cli import models

    def interrupted(args):
        raise KeyboardInterrupt("interrupted in epoch 2 of 9. The last good checkpoint is runs/x/last.pt")

    monkeypatch.setattr(models, "run", interrupted)
    assert main(["models"]) == 130
    err = capsys.readouterr().err
    assert "omnireid models: interrupted in epoch 2 of 9. The last good checkpoint is runs/x/last.pt" in err
    assert "Traceback" not in err


def test_a_failed_write_names_the_path(monkeypatch, capsys, tmp_path):
    from omnireid.cli import models

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.json"))

    monkeypatch.setattr(models, "run", full)
    err = error_of(["models"], capsys)
    assert f"cannot write {tmp_path / 'out.json'}: no space left on the device" in err


@pytest.mark.parametrize("argv, named", [
    (["eval", "--model", "osnet_x0_25", "--data", "market1501", "--batch-size", "0"], "--batch-size"),
    (["eval", "--model", "osnet_x0_25", "--data", "market1501", "--size", "8x4"], "--size"),
    (["eval", "--model", "osnet_x0_25", "--data", "market1501", "--device", "cuda:99"], "--device"),
    (["bench", "--batch-sizes", "0"], "--batch-sizes"),
    (["bench", "--batch-sizes", "abc"], "--batch-sizes"),
    (["bench", "--rounds", "0"], "--rounds"),
    (["bench", "--threads", "-1"], "--threads"),
    (["info", "osnet_x0_25", "--input", "0x0"], "--input"),
    (["extract", "x", "-o", "g.npz", "--batch-size", "-3"], "--batch-size"),
    (["demo", "--epochs", "0"], "--epochs"),
])
def test_option_values_are_checked_where_parsed(argv, named, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {named}" in err and "Traceback" not in err


def test_config_values_name_their_origin(capsys):
    err = error_of(["train", "--set", "train.amp=bf32", "--print-config"], capsys)
    assert "--set train.amp=bf32: train.amp='bf32' is not one of none, bf16, fp16" in err
    err = error_of(["train", "--set", "train.device=cuda:99", "--print-config"], capsys)
    assert "train.device" in err


@pytest.mark.parametrize("content, match", [
    (b"this is text, not a checkpoint\n", "not a readable checkpoint: a text file"),
    (b"", "not a readable checkpoint: the file is empty"),
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "an HTML page"),
    (b"PK\x03\x04" + bytes(40), "cut short"),
    (b"\x80\x02}q\x00(X", "a pickle (legacy torch format) that is truncated"),
])
def test_files_that_are_not_checkpoints(tmp_path, capsys, content, match):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    err = error_of(["info", "osnet_x0_25", "--weights", str(path)], capsys)
    assert str(path) in err and match in err


def test_a_folder_given_as_weights_is_named_as_such(tmp_path, capsys):
    folder = tmp_path / "weights"
    folder.mkdir()
    assert f"{folder} is a folder, not a checkpoint file" in error_of(
        ["info", "osnet_x0_25", "--weights", str(folder)], capsys)
    assert f"--weights {folder}: a folder, not a weights file" in error_of(
        ["eval", "--model", "osnet_x0_25", "--weights", str(folder), "--data", "market1501"], capsys)
    from omnireid.engine.checkpoint import load_checkpoint
    from omnireid.errors import MissingFileError

    with pytest.raises(MissingFileError, match="is a folder, not a checkpoint file"):
        load_checkpoint(folder)


def test_broken_safetensors_files(tmp_path, capsys):
    good = save_weights(create_model("osnet_x0_25"), tmp_path / "w.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 3])
    import pickle

    (tmp_path / "pickled.safetensors").write_bytes(pickle.dumps({"w": torch.ones(2)}))
    for name in ("cut.safetensors", "pickled.safetensors"):
        err = error_of(["info", "osnet_x0_25", "--weights", str(tmp_path / name)], capsys)
        assert f"{tmp_path / name}: not a readable safetensors file" in err


def test_binary_recipe_file(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_bytes(bytes(range(128, 256)))
    err = error_of(["train", "-c", str(path), "--print-config"], capsys)
    assert f"{path}: not a text file" in err


def test_resume_and_overwrite_exclude_each_other(capsys, tmp_path):
    err = error_of(["train", "--resume", "--overwrite", "-o", str(tmp_path / "x")], capsys)
    assert "--resume and --overwrite" in err


def test_unknown_target_is_refused_before_training(capsys, tmp_path):
    err = error_of(["train", "-o", str(tmp_path / "run"), "--set", "data.targets=[market1501, cuhk3]"], capsys)
    assert "--set data.targets=[market1501, cuhk3]: unknown dataset 'cuhk3'. Did you mean 'cuhk03'" in err
    assert not (tmp_path / "run").exists()


def test_size_type_is_an_argparse_type():
    from omnireid.cli.util import positive_int_list, size_arg

    assert size_arg("256x128") == (256, 128) and positive_int_list("1, 16,64") == [1, 16, 64]
    with pytest.raises(argparse.ArgumentTypeError, match="too small"):
        size_arg("15x64")


def test_every_error_class_of_the_library_is_one_the_cli_reports():
    """An exception class defined anywhere in omnireid must derive from OmnireidError: the CLI
    turns exactly those into its one-line message, so one outside the hierarchy would reach the
    user as a traceback."""
    import importlib
    import inspect
    import pkgutil

    import omnireid
    from omnireid.errors import MissingExtraError, OmnireidError

    outside, modules = [], 0
    for info in pkgutil.walk_packages(omnireid.__path__, "omnireid."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except (ImportError, MissingExtraError):  # a module of an optional extra that is not installed
            continue
        modules += 1
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException) and not issubclass(cls, OmnireidError):
                outside.append(f"{info.name}.{name}")
    assert modules > 30  # the walk reached the package
    assert outside == [], f"error classes outside omnireid.errors' hierarchy: {outside}"


def test_sigterm_ends_like_ctrl_c_with_status_143(monkeypatch, capsys):
    import os
    import signal

    from omnireid.cli import models

    def stopped_by_a_scheduler(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not interrupt the command")

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(models, "run", stopped_by_a_scheduler)
    assert main(["models"]) == 143
    assert capsys.readouterr().err.strip() == "omnireid models: stopped by SIGTERM; interrupted"
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's only


def test_an_html_page_under_a_known_checkpoint_name_is_named_as_such(tmp_path):
    from omnireid.errors import CheckpointError
    from omnireid.models.weights import KNOWN_WEIGHTS, read_checkpoint

    name = min(w.filename for w in KNOWN_WEIGHTS.values())
    path = tmp_path / name
    path.write_text("<html><body>quota exceeded</body></html>")
    with pytest.raises(CheckpointError, match=rf"{name}: sha256 .* it is not a checkpoint at all: an HTML page"):
        read_checkpoint(path)
