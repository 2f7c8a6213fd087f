"""Acceptance against torchreid itself: genuine checkpoints, real crops, torchreid's outputs.

Reads the material in $OMNIREID_COMPAT_DIR (see tests/conftest.py): fails when CI expects it and
a file is missing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from omnireid.inference.extract import extract_features
from omnireid.models import create_model
from omnireid.models.weights import read_checkpoint, sha256_of
from tests.conftest import require_file


def _manifest(compat_dir: Path) -> tuple[list[Path], np.ndarray, np.ndarray]:
    root = compat_dir / "cuhk03_pair1_val"
    with open(require_file(root / "manifest.csv")) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 938
    paths = [root / r["path"] for r in rows]
    return paths, np.array([int(r["pid"]) for r in rows]), np.array([int(r["camid"]) for r in rows])


def _rank1_map(distmat: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray) -> tuple[float, float]:
    """Straightforward CMC rank-1 and mAP (different cameras: no same-camera filtering needed)."""
    rank1, aps = [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        matches = g_pids[order] == q_pids[i]
        if not matches.any():
            continue
        rank1.append(float(matches[0]))
        hits = np.flatnonzero(matches)
        aps.append(np.mean((np.arange(len(hits)) + 1) / (hits + 1)))
    return float(np.mean(rank1)), float(np.mean(aps))


def test_reference_hashes(compat_dir: Path) -> None:
    ref = json.loads(require_file(compat_dir / "reference.json").read_text())
    for rel, digest in ref["sha256"].items():
        assert sha256_of(require_file(compat_dir / rel)) == digest, rel


@pytest.fixture(scope="module")
def msmt_features(compat_dir: Path) -> np.ndarray:
    paths, _, _ = _manifest(compat_dir)
    model = create_model("osnet_x0_25", weights=require_file(compat_dir / "weights/osnet_x0_25_msmt17.pth"))
    return extract_features(model, paths, batch_size=128)


def test_osnet_x0_25_msmt17_features_match_torchreid(compat_dir: Path, msmt_features) -> None:
    ref = np.load(require_file(compat_dir / "cuhk03_pair1_val/features_osnet_x0_25_msmt17.npy"))
    assert msmt_features.shape == ref.shape == (938, 512)
    assert np.abs(msmt_features - ref).max() <= 1e-4


def test_osnet_x0_25_msmt17_metrics_match_torchreid(compat_dir: Path, msmt_features) -> None:
    ref = json.loads((compat_dir / "reference.json").read_text())
    expected = ref["files"]["features_osnet_x0_25_msmt17.npy"]["metrics_cam0_query_vs_cam1_gallery"]
    _, pids, cams = _manifest(compat_dir)
    q, g = cams == 0, cams == 1
    # torchreid's distances: float32, F.normalize then 1 - q @ g.T; squared euclidean
    qf, gf = torch.from_numpy(msmt_features[q]), torch.from_numpy(msmt_features[g])
    cosine = (1 - F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).T).numpy()
    euclid = (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)[None] - 2 * qf @ gf.T).numpy()
    for name, distmat in (("cosine", cosine), ("euclidean", euclid)):
        rank1, mAP = _rank1_map(distmat, pids[q], pids[g])
        assert rank1 == pytest.approx(expected[name]["rank1"], abs=1e-6), name
        assert mAP == pytest.approx(expected[name]["mAP"], abs=1e-6), name


def test_osnet_x0_25_market1501_features_match_torchreid(compat_dir: Path) -> None:
    paths, _, _ = _manifest(compat_dir)
    model = create_model("osnet_x0_25", weights=require_file(compat_dir / "weights/osnet_x0_25_market1501.pth"))
    ref = np.load(require_file(compat_dir / "cuhk03_pair1_val/features_osnet_x0_25_market1501.npy"))
    feats = extract_features(model, paths[:128])
    assert np.abs(feats - ref[:128]).max() <= 1e-4


@pytest.mark.parametrize(
    "model_name,stem",
    [("osnet_ibn_x1_0", "osnet_ibn_x1_0_random_calibrated"),
     ("osnet_ain_x0_25", "osnet_ain_x0_25_random_calibrated"),
     ("osnet_x0_5", "osnet_x0_5_random_calibrated")],
)
def test_random_calibrated_checkpoints_reproduce_torchreid(compat_dir: Path, model_name: str, stem: str) -> None:
    paths, _, _ = _manifest(compat_dir)
    weights = require_file(compat_dir / "weights" / f"{stem}.pth")
    model = create_model(model_name, weights=weights)
    ref = np.load(require_file(compat_dir / "weights" / f"{stem}_features_first64.npy"))
    feats = extract_features(model, paths[:64])
    assert np.abs(feats - ref).max() <= 1e-4


def test_genuine_checkpoints_read_safely(compat_dir: Path) -> None:
    # legacy non-zip pickles, read with weights_only=True and verified against the known sha256
    path = require_file(compat_dir / "weights/osnet_x0_25_msmt17.pth")
    assert path.read_bytes()[:2] != b"PK"
    state = read_checkpoint(path)
    assert state["classifier.weight"].shape == (1041, 512)
