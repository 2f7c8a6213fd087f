"""Real material: fast paths against torchreid's features, bf16 retrieval accuracy on real crops."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from omnireid.inference import FeatureExtractor
from tests.conftest import require_file
from tests.inference_helpers import rank1_map

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS = "osnet_x0_25_msmt17.pth"
FEATURES = "features_osnet_x0_25_msmt17.npy"


@pytest.fixture(scope="module")
def crops(compat_dir):
    folder = compat_dir / "cuhk03_pair1_val"
    with open(require_file(folder / "manifest.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = [require_file(folder / r["path"]) for r in rows]
    pids = np.array([int(r["pid"]) for r in rows])
    cams = np.array([int(r["camid"]) for r in rows])
    reference = np.load(require_file(folder / FEATURES))
    weights = require_file(compat_dir / "weights" / WEIGHTS)
    fe = FeatureExtractor("osnet_x0_25", weights=weights, backend="eager", normalize=False)
    batch = fe.preprocess(paths)  # the evaluation preprocessing, done once
    return {"batch": batch, "pids": pids, "cams": cams, "reference": reference,
            "weights": weights, "model": fe.model,
            "metrics": json.loads(require_file(compat_dir / "reference.json").read_text())}


def cam_split(crops, feats):
    q, g = crops["cams"] == 0, crops["cams"] == 1
    return rank1_map(feats[q], feats[g], crops["pids"][q], crops["pids"][g])


def test_local_metric_reproduces_torchreid(crops) -> None:
    """The small metric used below gives torchreid's own numbers on torchreid's features."""
    ref = crops["metrics"]["files"][FEATURES]["metrics_cam0_query_vs_cam1_gallery"]["cosine"]
    r1, mean_ap = cam_split(crops, crops["reference"])
    assert r1 == pytest.approx(ref["rank1"], abs=1e-6)
    assert mean_ap == pytest.approx(ref["mAP"], abs=1e-6)


def test_fused_path_matches_torchreid_features(crops) -> None:
    fe = FeatureExtractor(crops["model"], backend="fused", normalize=False, batch_size=128)
    feats = fe(crops["batch"][:96])
    assert np.abs(feats - crops["reference"][:96]).max() < 1e-4


def test_bf16_accuracy_within_0_3_points(crops) -> None:
    fe = FeatureExtractor(crops["model"], backend="bf16", normalize=False, batch_size=128)
    feats = fe(crops["batch"])
    r1_32, map_32 = cam_split(crops, crops["reference"])
    r1_16, map_16 = cam_split(crops, feats)
    print(f"fp32 rank-1 {100 * r1_32:.2f} mAP {100 * map_32:.2f}; "
          f"bf16 rank-1 {100 * r1_16:.2f} mAP {100 * map_16:.2f}")
    # bf16 really ran: features differ from fp32, but not by much
    assert np.abs(feats - crops["reference"]).max() > 1e-4
    cos = (feats * crops["reference"]).sum(1) / (
        np.linalg.norm(feats, axis=1) * np.linalg.norm(crops["reference"], axis=1))
    assert cos.min() > 0.99
    assert abs(r1_16 - r1_32) * 100 <= 0.3
    assert abs(map_16 - map_32) * 100 <= 0.3
