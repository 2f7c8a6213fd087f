"""Typed recipes: YAML, dotted overrides, clear errors, every shipped recipe loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from omnireid.config import (
    Config,
    ConfigError,
    NasConfig,
    config_from_dict,
    load_config,
    load_nas_config,
)

# Every shipped recipe: training recipes and architecture-search recipes (with a `nas` section).
CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_defaults_and_yaml_and_overrides(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  name: sgd\n  lr: 0.065\nsched:\n  name: multi_step\n  stepsize: [150, 225, 300]\n")
    cfg = load_config(path, ["optim.lr=0.01", "train.max_epoch=3", "data.sources=[a, b]", "optim.nesterov=true",
                             "optim.weight_decay=1e-4"])
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.01 and cfg.optim.nesterov is True
    assert cfg.optim.weight_decay == 1e-4 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.sched.stepsize == [150, 225, 300] and cfg.train.max_epoch == 3
    assert cfg.data.sources == ["a", "b"]
    assert cfg.loss.label_smooth == 0.1 and cfg.loss.margin == 0.3  # untouched defaults
    assert Config().optim.name == "amsgrad"


def test_unknown_key_in_file_names_file_and_suggests(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("optim:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "optim.lrr" in msg and "'lr'" in msg


def test_unknown_override_and_section_suggest() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'max_epoch'"):
        load_config(None, ["train.max_epochs=3"])
    with pytest.raises(ConfigError, match="Did you mean 'optim'"):
        load_config(None, ["optimm.lr=3"])
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["optim.lr"])


@pytest.mark.parametrize("data,match", [
    ({"optim": {"lr": "fast"}}, "optim.lr: expected a number"),
    ({"train": {"max_epoch": 2.5}}, "train.max_epoch: expected an integer"),
    ({"optim": {"nesterov": "yes"}}, "expected true/false"),
    ({"optim": {"name": "adamw"}}, "optim.name='adamw' is not one of"),
    ({"sched": {"name": "cosin"}}, "Did you mean 'cosine'"),
    ({"loss": {"triplet": 1.0}}, "needs data.sampler=identity"),
    ({"optim": {"lr": 0}}, "optim.lr must be > 0"),
])
def test_bad_values(data, match) -> None:
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_resolved_config_round_trips(tmp_path) -> None:
    cfg = load_config(None, ["optim.lr=0.02", "data.synthetic={num_ids: 10}", "expected={market1501: {rank1: 94.8}}"])
    saved = cfg.save(tmp_path / "config.yaml")
    again = load_config(saved)
    assert again == cfg and again.data.synthetic == {"num_ids": 10}
    assert again.expected["market1501"]["rank1"] == 94.8


def test_model_arch_override() -> None:
    cfg = load_config(None, ["model.arch=child.json"])
    assert cfg.model.arch == "child.json"


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_recipes_load(path) -> None:
    # architecture-search recipes (a `nas` section) load as NasConfig, the others as Config
    is_search = "nas" in (yaml.safe_load(path.read_text()) or {})
    cfg = load_nas_config(path) if is_search else load_config(path)
    assert cfg.train.max_epoch >= 1
    assert isinstance(cfg, NasConfig) == is_search


def test_recipes_exist() -> None:
    names = {p.name for p in CONFIGS}
    assert "demo.yaml" in names and len(names) >= 6


def test_demo_recipe_matches_file() -> None:
    from omnireid.cli.demo import DEMO_RECIPE

    file_cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    assert load_config(None, base=DEMO_RECIPE) == file_cfg
