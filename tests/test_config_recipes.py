"""Packaged recipes: listed, printed, found by name from anywhere, and shipped in the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from omnireid.cli import main
from omnireid.config import load_config
from omnireid.recipes import list_recipes, packaged_recipe, recipe_text, resolve_recipe

REPO = Path(__file__).resolve().parents[1]
TINY = ("{num_ids: 6, num_cameras: 2, cameras_per_id: [2, 2], images_per_camera: [2, 3], "
        "num_distractors: 2, num_junk: 1, height: 64, width: 32}")


def test_every_recipe_is_listed_with_a_summary() -> None:
    recipes = {r.name: r for r in list_recipes()}
    files = sorted(p.stem for p in (REPO / "src" / "omnireid" / "recipes").glob("*.yaml"))
    assert sorted(recipes) == files and len(files) >= 8
    assert recipes["nas"].kind == "nas" and recipes["demo"].kind == "train"
    assert all(r.summary for r in recipes.values())


def test_names_resolve_and_paths_win(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("demo") == packaged_recipe("demo.yaml")
    own = tmp_path / "demo"  # a file of that name in the working folder is taken as a path
    own.write_text("train:\n  max_epoch: 2\n")
    assert resolve_recipe("demo") == Path("demo")
    assert load_config("demo").train.max_epoch == 2
    with pytest.raises(FileNotFoundError, match="Did you mean 'demo'"):
        resolve_recipe("dmeo")
    with pytest.raises(FileNotFoundError, match="config file not found: sub/x.yaml"):
        resolve_recipe("sub/x.yaml")


def test_recipes_command(capsys, tmp_path) -> None:
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "osnet_x1_0_market1501_finetune_step" in out and "nas" in out
    assert main(["recipes", "show", "demo"]) == 0
    text = capsys.readouterr().out
    assert text == recipe_text("demo") and text.startswith("# The demo recipe")
    copy = tmp_path / "my.yaml"
    copy.write_text(text)
    assert load_config(copy) == load_config("demo")
    assert main(["recipes", "path", "nas"]) == 0
    assert Path(capsys.readouterr().out.strip()) == packaged_recipe("nas")
    assert main(["recipes", "show", "demoo"]) == 2
    assert "Did you mean 'demo'" in capsys.readouterr().err
    assert main(["recipes", "show"]) == 2


def test_train_with_a_packaged_recipe_name(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no recipe file anywhere near
    assert main(["train", "-c", "demo", "--print-config", "--set", "optim.lr=0.01"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["name"] == "osnet_x0_25" and printed["optim"]["lr"] == 0.01
    argv = ["train", "-c", "demo", "-o", str(tmp_path / "run"), "--set", f"data.root={tmp_path}",
            "--set", f"data.synthetic={TINY}", "--set", "data.targets=[synthetic_a]",
            "--set", "data.height=32", "--set", "data.width=16", "--set", "data.batch_size=4",
            "--set", "data.num_workers=0", "--set", "train.max_epoch=1",
            "--set", "train.max_steps_per_epoch=1", "--set", "train.progress=false",
            "--set", "train.num_threads=1", "--set", "train.amp=none"]
    assert main(argv) == 0
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert main(["train", "-c", "no_such_recipe"]) == 2
    assert "packaged recipes" in capsys.readouterr().err.lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the sources (no build folder left in the checkout)."""
    if subprocess.run([sys.executable, "-c", "import setuptools"]).returncode:
        pytest.fail("setuptools is needed to build the wheel")
    tmp = tmp_path_factory.mktemp("wheel")
    proj = tmp / "proj"
    proj.mkdir()
    shutil.copytree(REPO / "src", proj / "src", ignore=shutil.ignore_patterns("__pycache__",
                                                                            "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, proj / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp / "dist"), str(proj)],
                   check=True, capture_output=True, timeout=300)
    return next((tmp / "dist").glob("omnireid-*.whl"))


def test_wheel_ships_the_recipes(wheel) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in list_recipes():
        assert f"omnireid/recipes/{recipe.name}.yaml" in names
    assert "omnireid/recipes/__init__.py" in names and "omnireid/py.typed" in names


def test_recipes_work_from_the_installed_wheel(wheel, tmp_path) -> None:
    """Install the wheel alone into a fresh venv (its dependencies, torch and the rest, are
    borrowed from this environment through a path file, which adds the folder without running
    its own path files, so no editable or source copy of omnireid is visible), then list the
    recipes, print one and train one epoch with one, from an empty folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True,
                   timeout=300)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"], check=True,
                               capture_output=True, text=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def omnireid(*args: str) -> str:
        proc = subprocess.run([str(venv / "bin" / "omnireid"), *args], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    where = subprocess.run([str(python), "-c", "import omnireid; print(omnireid.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(venv)
    listed = omnireid("recipes")
    assert all(r.name in listed for r in list_recipes())
    assert omnireid("recipes", "show", "demo") == recipe_text("demo")
    omnireid("train", "-c", "demo", "-o", "run", "--set", f"data.root={work / 'data'}",
             "--set", f"data.synthetic={TINY}", "--set", "data.targets=[synthetic_a]",
             "--set", "data.height=32", "--set", "data.width=16", "--set", "data.batch_size=4",
             "--set", "data.num_workers=0", "--set", "train.max_epoch=1",
             "--set", "train.max_steps_per_epoch=2", "--set", "train.progress=false",
             "--set", "train.num_threads=1", "--set", "train.amp=none")
    assert yaml.safe_load((work / "run" / "config.yaml").read_text())["model"]["name"] == \
        load_config("demo").model.name
    assert (work / "run" / "last.pt").is_file()
