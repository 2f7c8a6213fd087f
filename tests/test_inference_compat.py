"""Real material: fast paths against torchreid's features, bf16 retrieval accuracy on real crops."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from omnireid.evaluation import compute_distance_matrix, evaluate_rank
from omnireid.inference import FeatureExtractor
from tests.conftest import require_file

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
    with torch.inference_mode():
        fp32 = fe(batch)  # this machine's fp32 features: the baseline of the reduced-precision paths
    return {"batch": batch, "pids": pids, "cams": cams, "reference": reference, "fp32": fp32,
            "weights": weights, "model": fe.model}


def cam_split(crops, feats, metric="cosine"):
    """Camera 0 queries against the camera 1 gallery: the distance matrix and its pid masks."""
    q, g = crops["cams"] == 0, crops["cams"] == 1
    distmat = compute_distance_matrix(feats[q], feats[g], metric)
    return distmat, crops["pids"][q], crops["pids"][g], crops["cams"][q], crops["cams"][g]


def test_fused_path_matches_torchreid_features(crops) -> None:
    fe = FeatureExtractor(crops["model"], backend="fused", normalize=False, batch_size=128)
    feats = fe(crops["batch"][:96])
    # torchreid's features come from another machine; see test_models_compat for the 1e-4 bound
    assert np.abs(feats - crops["reference"][:96]).max() < 1e-4


def noise_bounds(distmat: np.ndarray, q_pids, g_pids, q_cams, g_cams, noise: np.ndarray,
                 draws: int = 100, seed: int = 0) -> dict[str, float]:
    """What unstructured noise as large as ``noise`` (reduced-precision minus fp32 distances) does
    to rank-1 and mAP.

    Each draw adds a random permutation of the measured perturbations to the fp32 distances; it
    counts the queries whose rank-1 outcome changes, the net change in rank-1 hits and the change
    in mAP. Each bound is ``mean + 4 std`` of its absolute value over the draws: a path whose
    errors are as large as measured, but not aimed at the near-tied queries, rarely exceeds it."""
    rng = np.random.default_rng(seed)
    base = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    hit = base.first_match == 0
    flat = noise.ravel()
    flips, net, dmap = [], [], []
    for _ in range(draws):
        r = evaluate_rank(distmat + rng.permutation(flat).reshape(noise.shape), q_pids, g_pids,
                          q_cams, g_cams)
        flips.append(int(((r.first_match == 0) != hit).sum()))
        net.append(abs(int((r.first_match == 0).sum()) - int(hit.sum())))
        dmap.append(abs(r.mAP - base.mAP))
    return {k: float(np.mean(v) + 4 * np.std(v)) for k, v in
            (("flips", flips), ("net", net), ("mAP", dmap))}


def test_bf16_accuracy_in_queries(crops) -> None:
    """bf16 against fp32 on the 938 real crops (451 queries), stated in queries, not points.

    One query is 0.22 rank-1 points here, so a bare 0.3-point bound is one or two near-tied
    queries, and which ones flip depends on how the CPU rounds bf16 (AMX, AVX512-BF16 and
    emulation all differ). The bound is derived from this run instead: the number of queries
    whose rank-1 outcome changes must not exceed what unstructured noise of the size bf16
    actually produced here would change (``rank1_flip_bound``); the feature cosine bound keeps
    that size small. The 0.3-point goal itself is a benchmark figure
    (``benchmarks/bench_inference.py --accuracy``)."""
    fe = FeatureExtractor(crops["model"], backend="bf16", normalize=False, batch_size=128)
    feats = fe(crops["batch"])
    fp32 = crops["fp32"]
    # bf16 really ran: features differ from fp32, but only by bf16's rounding (8 significant bits)
    assert np.abs(feats - fp32).max() > 1e-4
    cos = (feats * fp32).sum(1) / (np.linalg.norm(feats, axis=1) * np.linalg.norm(fp32, axis=1))
    assert cos.min() > 0.99
    d32, q_pids, g_pids, q_cams, g_cams = cam_split(crops, fp32)
    d16 = cam_split(crops, feats)[0]
    r32 = evaluate_rank(d32, q_pids, g_pids, q_cams, g_cams)
    r16 = evaluate_rank(d16, q_pids, g_pids, q_cams, g_cams)
    hit32, hit16 = r32.first_match == 0, r16.first_match == 0
    flips = int((hit32 != hit16).sum())
    net = abs(int(hit16.sum()) - int(hit32.sum()))
    bound = noise_bounds(d32, q_pids, g_pids, q_cams, g_cams, d16 - d32)
    print(f"fp32 rank-1 {100 * r32.cmc[0]:.2f} mAP {100 * r32.mAP:.2f}; bf16 rank-1 "
          f"{100 * r16.cmc[0]:.2f} mAP {100 * r16.mAP:.2f}; {flips} of {len(d32)} queries changed "
          f"their rank-1 outcome, net {net} (bounds for noise of that size: {bound['flips']:.1f}, "
          f"{bound['net']:.1f}, mAP {100 * bound['mAP']:.2f} points)")
    assert flips <= bound["flips"]
    assert net <= bound["net"]
    assert abs(r16.mAP - r32.mAP) <= bound["mAP"]
