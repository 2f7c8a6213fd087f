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


def test_decision_spread_is_the_spread_of_the_per_kind_and_cross_domain_means(calibration):
    import statistics

    from omnireid.data.synthetic_domains import SINGLE_SOURCE

    kinds = SINGLE_SOURCE["targets"]
    targets = [t for ts in kinds.values() for t in ts]
    runs = []
    for seed in (1, 2, 3):
        # every target gets its own value per seed, so a wrong grouping changes the result
        results = {t: {"rank1": (10 * seed + 3 * i + seed * i % 5) / 100} for i, t in enumerate(targets)}
        runs.append({"setting": SINGLE_SOURCE["source"], "seed": seed, "results": results})
    runs.append({"setting": "p1s2", "seed": 1, "results": {t: {"rank1": 0.9} for t in targets}})  # not the source
    spread = calibration.decision_spread(runs)
    assert spread["seeds"] == [1, 2, 3]
    per_kind = {k: [statistics.fmean(100 * r["results"][t]["rank1"] for t in ts) for r in runs[:3]]
                for k, ts in kinds.items()}
    cross = [statistics.fmean(per_kind[k][i] for k in kinds) for i in range(3)]
    for name, values in (*per_kind.items(), ("cross-domain", cross)):
        assert spread[name]["rank1_std"] == pytest.approx(statistics.stdev(values))
        assert spread[name]["rank1_mean"] == pytest.approx(statistics.fmean(values))
    assert calibration.decision_spread(runs[:1]) is None
