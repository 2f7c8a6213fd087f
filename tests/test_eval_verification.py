"""Verification figures: ROC, EER and thresholds on hand-computed cases and against brute force."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from omnireid.evaluation.verification import (
    equal_error_rate,
    identity_bootstrap,
    operating_point,
    pair_distances,
    roc_curve,
    verification_report,
    wilson_interval,
)
from omnireid.inference.verify import Calibration, CalibrationError, Verifier, cosine_distances


def test_roc_eer_and_thresholds_by_hand() -> None:
    pos, neg = np.array([0.1, 0.3]), np.array([0.2, 0.4, 0.5])
    roc = roc_curve(pos, neg)
    np.testing.assert_array_equal(roc.thresholds, [0.1, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_array_equal(roc.true_matches, [1, 1, 2, 2, 2])
    np.testing.assert_array_equal(roc.false_matches, [0, 1, 1, 2, 3])
    # FNR - FPR: 1 (t=-inf), .5 (0.1), 1/6 (0.2), -1/3 (0.3): crossing 1/3 of the way from 0.2
    # to 0.3, where FPR stays 1/3
    eer, t = equal_error_rate(roc)
    assert eer == pytest.approx(1 / 3) and t == pytest.approx(0.2 + 0.1 / 3)
    p = operating_point(roc, 0.34)  # one false match of three allowed
    assert (p.threshold, p.tpr, p.false_matches, p.true_matches) == (0.3, 1.0, 1, 2)
    p = operating_point(roc, 0.2)  # none allowed: the smallest distance (a true match)
    assert (p.threshold, p.tpr, p.false_matches) == (0.1, 0.5, 0)
    roc2 = roc_curve(np.array([0.3]), np.array([0.1, 0.2]))
    p = operating_point(roc2, 0.4)  # the nearest pair is a false match: nothing is accepted
    assert p.threshold < 0.1 and p.tpr == 0.0 and p.false_matches == 0


def test_ties_make_one_roc_point() -> None:
    roc = roc_curve(np.array([0.2, 0.2]), np.array([0.2, 0.5]))
    np.testing.assert_array_equal(roc.thresholds, [0.2, 0.5])
    np.testing.assert_array_equal(roc.true_matches, [2, 2])
    np.testing.assert_array_equal(roc.false_matches, [1, 2])


def _brute_pairs(x, labels, cams, cross):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(x)), 2):
        if cross and cams[i] == cams[j]:
            continue
        d = 1.0 - float(np.dot(x[i], x[j]))
        (pos if labels[i] == labels[j] else neg).append(d)
    return np.sort(pos), np.sort(neg)


@pytest.mark.parametrize("cross", [False, True])
def test_pair_distances_against_brute_force(cross) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8))
    labels = rng.integers(0, 7, 40).astype(str)
    cams = rng.integers(0, 3, 40)
    pairs = pair_distances(x, labels, cams, cross_camera=cross, chunk=7)
    pos, neg = _brute_pairs(x, labels, cams, cross)
    np.testing.assert_allclose(np.sort(pairs.positive), pos, atol=1e-12)  # float64 both ways
    np.testing.assert_allclose(np.sort(pairs.negative), neg, atol=1e-12)
    assert pairs.total_negatives == len(neg) and not pairs.sampled
    names = np.unique(labels)
    assert (pairs.negative_ids[:, 0] < pairs.negative_ids[:, 1]).all()
    # each pair's identities: the sum of its distances per identity matches brute force
    for k, name in enumerate(names[:3]):
        mine = pairs.positive[pairs.positive_ids == k]
        xs = x[labels == name] / np.linalg.norm(x[labels == name], axis=1, keepdims=True)
        cs = cams[labels == name]
        expect = [1 - xs[i] @ xs[j] for i, j in itertools.combinations(range(len(xs)), 2)
                  if not (cross and cs[i] == cs[j])]
        np.testing.assert_allclose(np.sort(mine), np.sort(expect), atol=1e-12)
    assert pairs.num_identities == len(names)


def test_negative_sampling_keeps_every_positive() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6))
    labels = np.repeat(np.arange(30), 4)
    full = pair_distances(x, labels)
    part = pair_distances(x, labels, max_negatives=1000, seed=3)
    assert len(part.positive) == len(full.positive) == 30 * 6
    assert part.sampled and part.total_negatives == len(full.negative)
    assert 800 < len(part.negative) < 1200  # binomial draw around 1000 (sd ~31)
    assert "sampled" in " ".join(verification_report(part).notes)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="NaN or infinity"):
        pair_distances(np.array([[1.0, np.nan], [1.0, 0.0]]), [0, 1])
    with pytest.raises(ValueError, match="same-person and different-person"):
        roc_curve(np.array([]), np.array([0.5]))
    with pytest.raises(ValueError, match="camera"):
        pair_distances(np.eye(3), [0, 0, 1], cross_camera=True)


def test_small_set_is_reported_plainly() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 16))
    labels = np.repeat(np.arange(4), 3)
    report = verification_report(pair_distances(x, labels), fprs=[1e-1, 1e-3])
    coarse, fine = report.points
    assert not fine.enough and "too small for FPR 0.001" in fine.note
    assert f"{report.roc.num_negative}" in fine.note
    assert "only 4 identities" in " ".join(report.notes)
    assert any("too small for FPR 0.001" in n for n in report.notes)
    json.dumps(report.to_dict())  # plain numbers only
    assert coarse.num_negative == report.roc.num_negative == 54


def test_identity_bootstrap_sees_clustered_false_matches() -> None:
    # 20 identities x 5 images; identities 0 and 1 look alike: all their cross pairs are close
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(20, 32))
    centres[1] = centres[0] + 0.05 * rng.normal(size=32)
    x = np.repeat(centres, 5, axis=0) + 0.1 * rng.normal(size=(100, 32))
    labels = np.repeat(np.arange(20), 5)
    pairs = pair_distances(x, labels)
    # 4750 different-person pairs; FPR 0.005 allows 23 false matches, all from people 0 and 1
    report = verification_report(pairs, fprs=[0.005], bootstrap_reps=400)
    p = report.points[0]
    near = pairs.negative <= p.threshold
    assert {tuple(v.tolist()) for v in pairs.negative_ids[near]} == {(0, 1)}
    assert p.false_matches == 23
    wide = p.identities.fpr[1] - p.identities.fpr[0]
    narrow = np.subtract(*wilson_interval(p.false_matches, p.num_negative)[::-1])
    assert wide > 3 * narrow  # resampling people is far less sure than counting pairs
    again = identity_bootstrap(pairs, p.threshold, reps=400)
    assert again.fpr == p.identities.fpr  # seeded


def test_calibration_file_round_trip_and_verifier(tmp_path) -> None:
    record = {"model": "osnet_x0_25", "weights_sha256": "ab" * 32, "weights_name": "w.pth",
              "random_weights": False, "input": [256, 128], "mean": [0.5] * 3,
              "std": [0.25] * 3}
    cal = Calibration(0.3, 1e-3, record, {"operating_points": [
        {"target_fpr": 1e-3, "threshold": 0.3, "enough": True},
        {"target_fpr": 1e-2, "threshold": 0.4, "enough": True}]}, {"source": "x"})
    path = cal.save(tmp_path / "c.json")
    again = Calibration.load(path)
    assert again.threshold == 0.3 and again.threshold_for(1e-2) == 0.4 and again.enough
    with pytest.raises(KeyError, match="calibrated rates"):
        again.threshold_for(0.5)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "omnireid-calibration", "threshold": "NaN", "target_fpr": 0.1, '
                   '"model": {}}')
    with pytest.raises(CalibrationError, match="not a finite number"):
        Calibration.load(bad)
    bad.write_text("{truncated")
    with pytest.raises(CalibrationError, match=str(bad)):
        Calibration.load(bad)

    class Fake:  # an extractor of another checkpoint
        model_name, weights, size = "osnet_x0_25", None, (256, 128)
        mean, std, normalize, backend = (0.5,) * 3, (0.25,) * 3, True, "fused"

    with pytest.raises(ValueError, match="embeddings of different models cannot be compared"):
        Verifier(Fake(), calibration=path)
    v = Verifier(Fake(), threshold=0.3)
    a = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    b = np.array([[0.8, 0.6], [0.0, 1.0]], np.float32)
    d, same = v.decide(a, b)
    np.testing.assert_allclose(d, [0.2, 1.0], atol=1e-6)
    assert same.tolist() == [True, False]
    np.testing.assert_allclose(cosine_distances(a, b), d)


def test_labelled_sets_from_folders_manifests_and_registered_layouts(tmp_path) -> None:
    from omnireid.inference.verify import load_labelled_set
    from tests._data_fixtures import touch_images

    # a registered layout (Market-style names): the test split without the reader's junk id -1
    # (this reader has no distractor id; market1501's reader also marks 0 as junk)
    market = tmp_path / "market"
    touch_images(market / "train", ["0001_c1_0001.jpg", "0001_c2_0002.jpg"])
    touch_images(market / "query", ["0005_c1_0001.jpg", "0006_c1_0001.jpg"])
    touch_images(market / "gallery", ["0005_c2_0003.jpg", "0006_c2_0004.jpg",
                                      "-1_c1_0009.jpg", "0000_c2_0007.jpg"])
    data = load_labelled_set(market, dataset="market_style")
    assert data.description["split"] == "test" and len(data.paths) == 5
    assert sorted(data.labels.tolist()) == [0, 5, 5, 6, 6] and set(data.cameras.tolist()) == {0, 1}
    both = load_labelled_set(market, dataset="market_style", split="all")
    assert len(both.paths) == 7 and len(set(both.labels.tolist())) == 4  # train ids kept apart
    # a folder per identity; a CSV manifest
    touch_images(tmp_path / "people", ["ann/1.jpg", "ann/2.jpg", "bob/1.jpg"])
    folders = load_labelled_set(tmp_path / "people")
    assert folders.description["dataset"] == "identity_folders" and len(folders.paths) == 3
    csv = tmp_path / "people" / "m.csv"
    csv.write_text("path,pid,camid\nann/1.jpg,7,0\nbob/1.jpg,8,1\n")
    rows = load_labelled_set(csv)
    assert rows.description["dataset"] == "csv_manifest" and rows.cameras.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match="calibration set not found"):
        load_labelled_set(tmp_path / "nope")
