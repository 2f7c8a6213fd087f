"""Typed recipes: YAML, dotted overrides, clear errors, every shipped recipe loads."""

from __future__ import annotations

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
from omnireid.recipes import list_recipes

# Every packaged recipe: training recipes and architecture-search recipes (kind "nas").
RECIPES = list_recipes()


def test_defaults_and_yaml_and_overrides(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("optim:\n  name: sgd\n  lr: 0.065\nsched:\n  name: multi_step\n  stepsize: [150, 225, 300]\n")
    cfg = load_config(path, ["optim.lr=0.01", "train.max_epoch=3", "data.sources=[market1501, dukemtmcreid]",
                             "optim.nesterov=true",
                             "optim.weight_decay=1e-4"])
    assert cfg.optim.name == "sgd" and cfg.optim.lr == 0.01 and cfg.optim.nesterov is True
    assert cfg.optim.weight_decay == 1e-4 and isinstance(cfg.optim.weight_decay, float)
    assert cfg.sched.stepsize == [150, 225, 300] and cfg.train.max_epoch == 3
    assert cfg.data.sources == ["market1501", "dukemtmcreid"]
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


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_shipped_recipes_load(recipe) -> None:
    # architecture-search recipes (a `nas` section) load as NasConfig, the others as Config
    is_search = "nas" in (yaml.safe_load(recipe.path.read_text()) or {})
    assert (recipe.kind == "nas") == is_search
    load = load_nas_config if is_search else load_config
    cfg = load(recipe.name)
    assert cfg.train.max_epoch >= 1
    assert isinstance(cfg, NasConfig) == is_search
    assert cfg == load(recipe.path)


def test_recipes_exist() -> None:
    names = {r.name for r in RECIPES}
    assert "demo" in names and len(names) >= 6


def test_errors_name_the_origin_of_the_setting(tmp_path) -> None:
    """The command line, the recipe file, a built-in recipe or the default: whichever set it."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  amp: bf16\nloss:\n  triplet: 1.0\n")
    with pytest.raises(ConfigError, match=r"^--set train.amp=bf32: train.amp='bf32' is not one of"):
        load_config(recipe, ["train.amp=bf32"])
    recipe.write_text("train:\n  amp: bf32\n")
    with pytest.raises(ConfigError, match=f"^{recipe}: train.amp='bf32'"):
        load_config(recipe, ["optim.lr=0.1"])
    with pytest.raises(ConfigError, match=r"^the demo recipe: .*data.height"):
        load_config(None, base={"data": {"height": 8}}, base_source="the demo recipe")
    # two settings from two places: the message says where each came from
    with pytest.raises(ConfigError, match=r"^--set loss.triplet=1: loss.triplet needs data.sampler=identity .*"
                                          r"\(data.sampler from the default\)"):
        load_config(None, ["loss.triplet=1"])
    recipe.write_text("data:\n  sampler: random\n")
    with pytest.raises(ConfigError, match=rf"\(data.sampler from {recipe}\)"):
        load_config(recipe, ["loss.triplet=1"])


def test_per_dataset_settings(tmp_path) -> None:
    cfg = load_config(None, ["data.sources=[{name: csv_manifest, root: a.csv, as: siteA}]",
                             "data.targets=[market1501, {name: csv_manifest, root: b.csv, as: siteB, "
                             "duplicates: drop}]"])
    assert cfg.data.sources == [{"name": "csv_manifest", "root": "a.csv", "as": "siteA"}]
    assert cfg.data.targets[0] == "market1501" and cfg.data.targets[1]["as"] == "siteB"
    assert load_config(cfg.save(tmp_path / "c.yaml")) == cfg
    with pytest.raises(ConfigError, match=r"data.targets\[0\]: 'duplicate' is not an option of the csv_manifest "
                                          r"reader. Did you mean 'duplicates'"):
        load_config(None, ["data.targets=[{name: csv_manifest, root: b.csv, duplicate: drop}]"])
    with pytest.raises(ConfigError, match="two datasets are named 'csv_manifest'; give each its own display name"):
        load_config(None, ["data.targets=[{name: csv_manifest, root: a.csv}, {name: csv_manifest, root: b.csv}]"])
    with pytest.raises(ConfigError, match=r"data.targets\[0\]: a dataset mapping needs 'name'"):
        load_config(None, ["data.targets=[{root: b.csv}]"])
    with pytest.raises(ConfigError, match="unknown dataset 'market1510'. Did you mean 'market1501'"):
        load_config(None, ["data.targets=[market1510]"])


@pytest.mark.parametrize("override, match", [
    ("data.height=8", "data.height=8 is too small"),
    ("data.width=0", "data.width=0 is too small"),
    ("train.num_threads=-1", "train.num_threads must be >= 0"),
    ("test.batch_size=0", "test.batch_size must be >= 1"),
    ("data.num_workers=-2", "data.num_workers must be >= 0"),
    ("train.device=cuda:99", "train.device='cuda:99'"),
    ("train.device=tpu", "is not a device"),
    ("data.on_bad_image=ignore", "data.on_bad_image='ignore' is not one of error, skip"),
])
def test_nonsense_values_are_refused_where_they_are_read(override, match) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])
