"""The calibration experiment's options (experiments/synthetic_calibration.py), without training."""

from __future__ import annotations

import json

import pytest

from omnireid.data.spec import check_spec, parse_dataset_spec
from omnireid.data.synthetic import SyntheticSpec
from tests._scripts import load_script


@pytest.fixture(scope="module")
def calibration():
    return load_script("experiments/synthetic_calibration.py")


def test_train_ids_change_the_training_split_and_keep_the_test_split_size(calibration):
    assert calibration.dataset_entry("p2s1", None) == "synthetic_p2s1"
    entry = calibration.dataset_entry("p2s1", 800)
    parsed = parse_dataset_spec(entry)
    check_spec(parsed)  # the options are the synthetic reader's
    assert parsed.display == "synthetic_p2s1"
    registered = SyntheticSpec.registered("p2s1")
    changed = SyntheticSpec.registered("p2s1", **parsed.options)
    assert changed.num_train_ids == 800 and registered.num_train_ids == 400
    assert changed.num_ids - changed.num_train_ids == registered.num_ids - registered.num_train_ids


def test_a_saved_run_with_other_training_identities_is_not_mixed_in(calibration, tmp_path):
    run = tmp_path / "run_p1s1_seed1.json"
    recipe = {"train": {"max_epoch": 8, "amp": "bf16"}, "optim": {"lr": 0.003}}
    run.write_text(json.dumps({"recipe": recipe, "train_ids": 800}))
    calibration.check_same_recipe(run, {"epochs": 8, "lr": 0.003, "amp": "bf16", "train_ids": 800})
    with pytest.raises(SystemExit, match="train_ids"):
        calibration.check_same_recipe(run, {"epochs": 8, "lr": 0.003, "amp": "bf16", "train_ids": None})
