"""The command line, end to end through the entry function and the installed script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from omnireid.cli import COMMAND_MODULES, build_parser, main
from omnireid.models import create_model, save_weights


def test_models_table(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "osnet_ain_x1_0" in out and "2,169,508" in out and "978,878,352" in out


def test_models_json(capsys) -> None:
    assert main(["models", "--json", "--input", "128x64"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["osnet_x0_25"]["params"] == 201_864
    assert "osnet" not in rows


def test_info_with_weights(tmp_path, capsys) -> None:
    path = save_weights(create_model("osnet_ain_x0_25", num_classes=3), tmp_path / "w.pth", layout="torchreid")
    assert main(["info", "osnet_ain_x0_25", "--weights", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["weights"]["layout"] == "torchreid_osnet_ain"
    assert info["arch"]["blocks"] == ["inside", "inside", "none", "inside", "inside", "none"]


def test_info_arch_spec_file(tmp_path, capsys) -> None:
    spec = tmp_path / "child.json"
    spec.write_text(json.dumps({"width": 0.25, "blocks": ["both"] * 6, "conv1_in": True}))
    assert main(["info", str(spec)]) == 0
    assert "conv4-2  both" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(capsys) -> None:
    assert main(["info", "osnet_ani_x1_0"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'osnet_ani_x1_0'" in err and "osnet_ain_x1_0" in err


def test_bad_size_is_a_clear_error(capsys) -> None:
    # checked where it is parsed: argparse's error naming the option, status 2
    with pytest.raises(SystemExit) as exit_:
        main(["info", "osnet_x0_25", "--input", "256by128"])
    assert exit_.value.code == 2
    assert "argument --input: size must look like HEIGHTxWIDTH" in capsys.readouterr().err


def test_demo_help(capsys) -> None:
    # the demo itself trains for minutes; tests/test_train_demo.py runs it on tiny data
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "synthetic" in capsys.readouterr().out


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_every_command_has_help(module: str, capsys) -> None:
    name = module.rsplit(".", 1)[1]
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([name, "--help"])
    assert info.value.code == 0
    assert "usage: omnireid" in capsys.readouterr().out


def test_console_script_and_module_entry() -> None:
    exe = shutil.which("omnireid")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "omnireid", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "models" in out and "info" in out
