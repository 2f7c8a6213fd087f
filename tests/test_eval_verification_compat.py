"""Real crops (CUHK03 pair 1, osnet_x0_25 trained on MSMT17): calibration figures against an
independent NumPy computation, and a threshold that holds on people it has not seen."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from omnireid.evaluation.verification import (
    identity_bootstrap,
    pair_distances,
    verification_report,
)
from omnireid.inference import FeatureExtractor
from omnireid.inference.verify import Verifier, calibrate, load_labelled_set
from tests.conftest import require_file

pytestmark = pytest.mark.usefixtures("one_thread")
FPRS = (1e-2, 1e-3, 1e-4)


@pytest.fixture(scope="module")
def calibrated(compat_dir):
    folder = compat_dir / "cuhk03_pair1_val"
    manifest = require_file(folder / "manifest.csv")
    with open(manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    labelled = load_labelled_set(manifest)
    weights = require_file(compat_dir / "weights" / "osnet_x0_25_msmt17.pth")
    fe = FeatureExtractor("osnet_x0_25", weights=weights)
    run = calibrate(fe, labelled.paths, labelled.labels, labelled.cameras, target_fpr=1e-2,
                    fprs=FPRS)
    pids = np.array([int(r["pid"]) for r in rows])
    return {"run": run, "extractor": fe, "pids": pids, "rows": rows, "folder": folder,
            "reference": np.load(require_file(folder / "features_osnet_x0_25_msmt17.npy"))}


def numpy_roc(embeddings: np.ndarray, pids: np.ndarray):
    """Pairs, ROC, EER and thresholds written out with SciPy's pdist and sorted searches."""
    d = pdist(np.asarray(embeddings, np.float64), "cosine")
    i, j = np.triu_indices(len(embeddings), 1)
    same = pids[i] == pids[j]
    pos, neg = np.sort(d[same]), np.sort(d[~same])
    t = np.unique(d)
    fpr = np.searchsorted(neg, t, side="right") / len(neg)
    tpr = np.searchsorted(pos, t, side="right") / len(pos)
    f = np.r_[0.0, fpr]
    m = np.r_[1.0, 1.0 - tpr]
    k = int(np.flatnonzero(m <= f)[0])
    w = (m[k - 1] - f[k - 1]) / ((m[k - 1] - f[k - 1]) - (m[k] - f[k]))
    eer = f[k - 1] + w * (f[k] - f[k - 1])
    points = {}
    for target in FPRS:
        ok = np.flatnonzero(fpr <= target)
        points[target] = (t[ok[-1]], tpr[ok[-1]], fpr[ok[-1]])
    return pos, neg, t, fpr, tpr, eer, points


def test_roc_and_eer_equal_an_independent_numpy_computation(calibrated) -> None:
    run, pids = calibrated["run"], calibrated["pids"]
    assert run.failed == [] and len(run.embeddings) == len(pids) == 938
    # the library's labels are the manifest's identities (renumbered)
    _, lib = np.unique(run.labels, return_inverse=True)
    _, ref = np.unique(pids, return_inverse=True)
    np.testing.assert_array_equal(lib, ref)
    pos, neg, t, fpr, tpr, eer, points = numpy_roc(run.embeddings, pids)
    res = run.result
    assert (res.roc.num_positive, res.roc.num_negative) == (len(pos), len(neg))
    assert res.num_identities == 100
    # Both sides compute the distances in float64, by different routes (a matrix product here,
    # pdist there): they agree to ~1e-15, so rates and thresholds agree to that, and a pair
    # could change sides only if it sat within 1e-15 of a threshold.
    assert res.eer == pytest.approx(eer, abs=1e-9)
    for p in res.points:
        thr, tpr_np, fpr_np = points[p.target_fpr]
        assert p.threshold == pytest.approx(thr, abs=1e-9)
        assert p.tpr == pytest.approx(tpr_np, abs=1.5 / len(pos))
        assert p.fpr == pytest.approx(fpr_np, abs=1.5 / len(neg))
        assert p.num_negative == len(neg) and p.num_positive == len(pos)
    # the whole curve, read at every NumPy threshold
    idx = np.searchsorted(res.roc.thresholds, t + 1e-12, side="right") - 1
    assert np.abs(res.roc.fpr[idx] - fpr).max() <= 1.5 / len(neg)
    assert np.abs(res.roc.tpr[idx] - tpr).max() <= 1.5 / len(pos)
    assert run.calibration.threshold == res.point(1e-2).threshold
    print(f"\nCUHK03 pair 1, osnet_x0_25_msmt17: EER {100 * res.eer:.2f} % "
          f"({len(pos)} same-person / {len(neg)} different-person pairs); "
          + "; ".join(f"TPR {100 * p.tpr:.2f} % at FPR {p.target_fpr:g} (threshold "
                      f"{p.threshold:.4f}, {p.false_matches} false matches)" for p in res.points))


def test_eer_within_what_torchreid_features_allow(calibrated) -> None:
    """torchreid's own features of the same crops differ slightly from ours; every pair
    distance moves by at most ``delta``, so our EER must lie between the EERs of torchreid's
    pairs made worse and better by ``delta`` (a bound computed here, not a tolerance)."""
    run, pids = calibrated["run"], calibrated["pids"]
    ours = pdist(run.embeddings.astype(np.float64), "cosine")
    theirs = pdist(calibrated["reference"].astype(np.float64), "cosine")
    delta = float(np.abs(ours - theirs).max())
    assert delta < 1e-3
    i, j = np.triu_indices(len(pids), 1)
    same = pids[i] == pids[j]
    worse = verification_report(theirs[same] + delta, theirs[~same] - delta, fprs=[1e-2])
    better = verification_report(theirs[same] - delta, theirs[~same] + delta, fprs=[1e-2])
    assert better.eer - 1e-12 <= run.result.eer <= worse.eer + 1e-12


def test_threshold_holds_on_unseen_people(calibrated) -> None:
    """A threshold chosen for FPR 1e-2 on half of the 100 identities, measured on the other
    half. Pairs that share a person are not independent (two look-alike people make many false
    matches at once), so the interval is that of resampling identities
    (:func:`identity_bootstrap`), for both halves: |FPR_B - FPR_A| <= 2.576 sqrt(sA^2 + sB^2)
    (99 %). The seed-0 split must pass; over 20 random splits at least 18 must, and the spread
    of FPR_B - FPR_A across them must match the predicted standard deviation within 2x."""
    run = calibrated["run"]
    emb, labels = run.embeddings, run.labels
    ids = np.unique(labels)
    diffs, predicted, inside, pair_inside = [], [], [], []
    for seed in range(20):
        half = np.random.default_rng(seed).permutation(ids)[: len(ids) // 2]
        a = np.isin(labels, half)
        pa, pb = pair_distances(emb[a], labels[a]), pair_distances(emb[~a], labels[~a])
        p = verification_report(pa, fprs=[1e-2], bootstrap_reps=0).points[0]
        fpr_b = float((pb.negative <= p.threshold).mean())
        sa = identity_bootstrap(pa, p.threshold, reps=500, seed=seed).fpr_sd
        sb = identity_bootstrap(pb, p.threshold, reps=500, seed=seed).fpr_sd
        bound = 2.576 * np.hypot(sa, sb)
        diffs.append(fpr_b - p.fpr)
        predicted.append(np.hypot(sa, sb))
        inside.append(abs(fpr_b - p.fpr) <= bound)
        # the naive interval, pairs counted as independent trials (reported, not required)
        n = len(pb.negative)
        pair_inside.append(abs(fpr_b - 1e-2) <= 2.576 * np.sqrt(1e-2 * (1 - 1e-2) / n))
        if seed == 0:
            first = (p.fpr, fpr_b, bound, len(pa.negative), n)
    print(f"\nseed 0: FPR {first[0]:.5f} on half A ({first[3]} pairs) -> {first[1]:.5f} on half "
          f"B ({first[4]} pairs), 99% identity bound +-{first[2]:.4f}; 20 splits: FPR_B "
          f"{min(d + 1e-2 for d in diffs):.4f}..{max(d + 1e-2 for d in diffs):.4f}, inside the "
          f"identity interval {sum(inside)}/20, inside the pair-binomial interval "
          f"{sum(pair_inside)}/20")
    ratio = float(np.std(diffs) / np.mean(predicted))
    print(f"spread of FPR_B - FPR_A over the splits / predicted sd: {ratio:.2f}")
    assert inside[0]
    assert sum(inside) >= 18
    assert 0.5 <= ratio <= 2.0, ratio


def test_same_person_answers_with_distance_and_decision(calibrated) -> None:
    run, rows, folder = calibrated["run"], calibrated["rows"], calibrated["folder"]
    verifier = Verifier(calibrated["extractor"], calibration=run.calibration)
    assert verifier.threshold == run.calibration.threshold
    a = next(i for i, r in enumerate(rows) if r["camid"] == "0")
    b = next(i for i, r in enumerate(rows) if r["pid"] == rows[a]["pid"] and r["camid"] == "1")
    c = next(i for i, r in enumerate(rows) if r["pid"] != rows[a]["pid"])
    for other in (b, c):
        v = verifier.same_person(folder / rows[a]["path"], folder / rows[other]["path"])
        e = run.embeddings[[a, other]].astype(np.float64)
        expect = 1.0 - e[0] @ e[1] / np.linalg.norm(e[0]) / np.linalg.norm(e[1])
        assert v.distance == pytest.approx(expect, abs=1e-5)  # same crops, another batch
        assert v.same == (v.distance <= run.calibration.threshold)
