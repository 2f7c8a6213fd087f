"""The search loop, its config and `omnireid nas` end to end on a tiny synthetic domain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from omnireid.cli import main
from omnireid.engine.search import SearchConfig, load_search_config, save_search, search
from omnireid.models import OSNetArch, create_model
from omnireid.models.supernet import SEARCH_SPACE

TINY = ("{num_ids: 6, num_cameras: 2, cameras_per_id: [2, 2], images_per_camera: [2, 3], "
        "num_distractors: 2, num_junk: 1, height: 64, width: 32}")


def _tiny_overrides(root: Path, epochs: int = 1, mode: str = "mixture") -> list[str]:
    return [f"data.root={root}", f"data.synthetic={TINY}", "data.sources=[synthetic_a]",
            "data.height=32", "data.width=16", "data.batch_size=4", f"train.max_epoch={epochs}",
            "train.max_steps_per_epoch=2", f"nas.mode={mode}", "nas.decay_every=1",
            "nas.width=0.25", "train.num_threads=1", "train.progress=false"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


# ---------------------------------------------------------------- config
def test_repo_config_loads_with_overrides() -> None:
    cfg = load_search_config("nas",
                             ["train.max_epoch=3", "nas.mode=single_path",
                              "data.sources=[synthetic_c, synthetic_d]", "nas.child_width=1"])
    assert cfg.train.max_epoch == 3 and cfg.nas.mode == "single_path"
    assert cfg.data.sources == ["synthetic_c", "synthetic_d"]
    assert cfg.nas.child_width == 1.0 and isinstance(cfg.nas.child_width, float)
    assert cfg.nas.init_temperature == 10.0 and cfg.nas.min_temperature == 1.0
    assert cfg.optim.name == "adam" and cfg.nas.width == 0.25


def test_defaults_are_the_papers_search_recipe() -> None:
    cfg = load_search_config(None)
    nas = cfg.nas
    assert (nas.init_temperature, nas.decay_every, nas.decay_rate, nas.min_temperature) == (10.0, 20, 0.5, 1.0)
    assert nas.affine_norms is False and nas.mode == "mixture" and nas.width == 1.0
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay) == ("adam", 0.0003, 5e-4)
    assert cfg.train.max_epoch == 60 and cfg.data.sampler == "random"
    assert (cfg.loss.softmax, cfg.loss.triplet, cfg.loss.label_smooth) == (1.0, 0.0, 0.1)
    assert cfg == SearchConfig()


def test_config_errors_name_the_file_and_key(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_epochs: 3\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*train\.max_epochs.*Did you mean 'max_epoch'"):
        load_search_config(bad)
    bad.write_text("nas:\n  decay_every: often\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*nas\.decay_every.*integer"):
        load_search_config(bad)
    bad.write_text("nas:\n  mode: sometimes\n")
    with pytest.raises(ValueError, match=r"bad\.yaml.*nas\.mode='sometimes'"):
        load_search_config(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        load_search_config(bad)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_search_config(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match=r"--set nas\.temprature=2.*Did you mean"):
        load_search_config(None, ["nas.temprature=2"])


# ---------------------------------------------------------------- the loop
@pytest.mark.parametrize("mode,share", [("mixture", False), ("single_path", False), ("two_path", True)])
def test_tiny_search_runs_and_derives_the_argmax(data_root, tmp_path, mode, share) -> None:
    cfg = load_search_config(None, _tiny_overrides(data_root, epochs=2, mode=mode)
                             + [f"nas.share_weights={str(share).lower()}"])
    result = search(cfg)
    assert [r.temperature for r in result.history] == [10.0, 5.0]
    last = result.history[-1]
    assert len(last.probabilities) == 6 and all(abs(sum(p) - 1) < 1e-5 for p in last.probabilities)
    chosen = [SEARCH_SPACE[max(range(4), key=a.__getitem__)] for a in last.alphas]
    assert list(result.arch.blocks) == chosen and result.arch.conv1_in
    # alpha moved away from its initial ones (trained with the network)
    assert any(abs(a - 1.0) > 1e-6 for row in last.alphas for a in row)
    assert result.seconds > 0 and result.peak_rss_mb > 0 and result.mode == mode
    art = save_search(result, tmp_path / "out", plot=False)
    assert OSNetArch.load(art.spec) == result.arch
    assert OSNetArch.load(art.report_json) == result.arch  # the report holds the spec too
    assert json.loads(art.report_json.read_text())["history"][0]["temperature"] == 10.0


def test_nas_command_end_to_end(data_root, tmp_path, capsys) -> None:
    out = tmp_path / "nas"
    argv = ["nas", "-c", "nas", "-o", str(out), "--quiet"]
    for item in _tiny_overrides(data_root):
        argv += ["--set", item]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "conv4-2" in text and f"report folder: {out}" in text
    for name in ("arch.json", "search.json", "report.md", "probabilities.png"):
        assert (out / name).is_file(), name
    assert (out / "probabilities.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| conv2-1 |" in (out / "report.md").read_text()
    # the child is a normal model, buildable at another width
    child = create_model("osnet", arch=out / "arch.json", width=0.5, num_classes=3).eval()
    with torch.no_grad():
        y = child(torch.randn(2, 3, 64, 32))
    assert y.embedding.shape == (2, 512) and y.logits.shape == (2, 3)


def test_nas_command_reports_bad_config(tmp_path, capsys) -> None:
    assert main(["nas", "--set", "data.sources=[]", "-o", str(tmp_path)]) == 2
    assert "data.sources is empty" in capsys.readouterr().err



def test_child_retrains_through_the_training_recipe(data_root, tmp_path, capsys) -> None:
    # the path the docs give: omnireid train --set model.arch=FOLDER/arch.json
    spec = tmp_path / "arch.json"
    arch = OSNetArch.from_dict({"width": 0.25, "blocks": ["both", "none", "after", "inside", "none", "none"],
                                "conv1_in": True})
    arch.save(spec)
    argv = ["train", "-c", "demo", "-o", str(tmp_path / "train"),
            "--set", f"model.arch={spec}", "--set", f"data.root={data_root}",
            "--set", f"data.synthetic={TINY}", "--set", "data.targets=[synthetic_a]",
            "--set", "data.height=32", "--set", "data.width=16", "--set", "data.batch_size=4",
            "--set", "data.num_instances=2", "--set", "data.num_workers=0",
            "--set", "train.max_epoch=1", "--set", "train.max_steps_per_epoch=1",
            "--set", "train.progress=false", "--set", "train.num_threads=1"]
    assert main(argv) == 0
    saved = (tmp_path / "train" / "config.yaml").read_text()
    assert f"arch: {spec}" in saved
    from omnireid.config import load_config
    from omnireid.engine.fit import build_model_from_config

    model = build_model_from_config(load_config(tmp_path / "train" / "config.yaml"), num_classes=3)
    assert model.arch == arch
