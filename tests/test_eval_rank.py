"""Rank metrics: hand-computed cases, fast path == reference, ties, protocols, real material."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from omnireid.evaluation import (
    SplitInputs,
    compute_distance_matrix,
    evaluate_rank,
    evaluate_rank_reference,
    evaluate_splits,
)
from tests._tolerance import (
    MAP_WIDTH,
    assert_within,
    cosine_slack,
    euclidean_slack,
    metric_interval,
    rank_width,
)
from tests.conftest import require_file

# evaluation numbers from NumPy/PyTorch kernels that are dispatched by instruction set: also run
# with AVX2 forced (make test-isa)
pytestmark = pytest.mark.isa

BOTH = pytest.mark.parametrize("impl", [evaluate_rank, evaluate_rank_reference])
ARITH = pytest.mark.parametrize("arithmetic", ["float32", "float64"])


def assert_same(a, b):
    np.testing.assert_array_equal(a.cmc, b.cmc)
    assert a.mAP == b.mAP
    assert a.mINP == pytest.approx(b.mINP, abs=1e-12)
    assert a.num_valid_queries == b.num_valid_queries
    assert a.num_skipped == b.num_skipped
    np.testing.assert_array_equal(a.first_match, b.first_match)
    np.testing.assert_allclose(a.query_ap, b.query_ap, rtol=0, atol=1e-7, equal_nan=True)


def random_case(seed, num_q=40, num_g=300, num_ids=25, num_cams=3, levels=None):
    rng = np.random.default_rng(seed)
    d = rng.random((num_q, num_g)).astype(np.float32)
    if levels:  # quantise to create many exact ties
        d = np.round(d * levels) / levels
    return (
        d,
        rng.integers(0, num_ids, num_q),
        rng.integers(0, num_ids, num_g),
        rng.integers(0, num_cams, num_q),
        rng.integers(0, num_cams, num_g),
    )


# --- hand-computed ------------------------------------------------------------------------------

# query 0: id 1 cam 0. Gallery g0 (id1 cam0) is removed; kept order g1(-) g2(+) g3(-) g4(+):
#          true matches at positions 2 and 4 -> AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4.
# query 1: id 9 is absent from the gallery -> skipped.
# query 2: id 3 cam 0: g3 is nearest -> AP = 1, INP = 1.
HAND = dict(
    distmat=np.array(
        [[0.1, 0.2, 0.3, 0.4, 0.5], [0.5, 0.4, 0.3, 0.2, 0.1], [0.9, 0.8, 0.7, 0.1, 0.6]],
        np.float32,
    ),
    q_pids=np.array([1, 9, 3]),
    g_pids=np.array([1, 2, 1, 3, 1]),
    q_camids=np.array([0, 0, 0]),
    g_camids=np.array([0, 1, 1, 1, 2]),
)


@BOTH
@ARITH
def test_market_hand_computed(impl, arithmetic):
    r = impl(*HAND.values(), max_rank=5, arithmetic=arithmetic)
    assert r.num_valid_queries == 2 and r.num_skipped == 1
    np.testing.assert_allclose(r.cmc, [0.5, 1, 1, 1, 1])
    assert r.mAP == pytest.approx(0.75, abs=1e-7)
    assert r.mINP == pytest.approx(0.75)
    np.testing.assert_allclose(r.query_ap, [0.5, np.nan, 1.0], equal_nan=True)
    np.testing.assert_array_equal(r.first_match, [1, -1, 0])
    assert r.rank(1) == 0.5 and r.rank(50) == 1.0
    assert r.summary()["rank1"] == 0.5


@BOTH
def test_max_rank_cut_to_gallery_and_short_lists_padded(impl):
    r = impl(*HAND.values(), max_rank=50)
    assert len(r.cmc) == 5
    # query 0 keeps 4 of 5 gallery images; its curve stays at 1 after the first hit
    one = impl(HAND["distmat"][:1], HAND["q_pids"][:1], *list(HAND.values())[2:3],
               HAND["q_camids"][:1], HAND["g_camids"], max_rank=5)
    np.testing.assert_array_equal(one.cmc, [0, 1, 1, 1, 1])


@BOTH
def test_no_camera_protocol_excludes_only_the_query_itself(impl):
    # 2 queries that are also gallery images 0 and 3; gallery ids [5, 5, 6, 6, 5]
    d = np.array([[0.0, 0.3, 0.1, 0.2, 0.4], [0.2, 0.5, 0.3, 0.0, 0.1]], np.float32)
    q_pids, g_pids = np.array([5, 6]), np.array([5, 5, 6, 6, 5])
    r = impl(d, q_pids, g_pids, None, None, max_rank=4, protocol="no_camera",
             query_gallery_index=np.array([0, 3]))
    # q0 kept order: g2(-) g3(-) g1(+) g4(+) -> AP = (1/3 + 2/4)/2 ; INP = 2/4
    # q1 kept order: g4(-) g0(-) g2(+) g1(-) -> AP = 1/3 ; INP = 1/3
    assert r.num_valid_queries == 2
    assert r.mAP == pytest.approx(((1 / 3 + 2 / 4) / 2 + 1 / 3) / 2, abs=1e-7)
    assert r.mINP == pytest.approx((2 / 4 + 1 / 3) / 2)
    np.testing.assert_allclose(r.cmc, [0, 0, 1, 1])
    # without the index, every same-id image counts, the query's own copy included
    r2 = impl(d, q_pids, g_pids, None, None, max_rank=4, protocol="no_camera")
    assert r2.first_match.tolist() == [0, 0]


def test_no_camera_index_must_point_at_same_identity():
    d = np.zeros((1, 2), np.float32)
    with pytest.raises(ValueError, match="another identity"):
        evaluate_rank(d, [1], [1, 2], None, None, protocol="no_camera",
                      query_gallery_index=np.array([1]))


def test_every_query_without_match_raises():
    with pytest.raises(ValueError, match="no query has a valid match"):
        evaluate_rank(np.zeros((2, 3)), [1, 2], [3, 3, 3], [0, 0], [1, 1, 1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(distmat=np.zeros(3)), "2-D"),
        (dict(q_pids=np.zeros(2)), "q_pids must have shape"),
        (dict(distmat=np.full((3, 5), np.nan)), "NaN"),
        (dict(protocol="dukemtmc"), "unknown protocol"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = dict(HAND)
    protocol = kwargs.pop("protocol", "market")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate_rank(*args.values(), protocol=protocol)


def test_market_needs_cameras():
    with pytest.raises(ValueError, match="no_camera"):
        evaluate_rank(HAND["distmat"], HAND["q_pids"], HAND["g_pids"], None, None)


# --- ties ---------------------------------------------------------------------------------------


@BOTH
def test_ties_that_do_not_change_the_result_hand_computed(impl):
    # the true match at 0.2 ties only with a removed image and another true match
    d = np.array([[0.2, 0.2, 0.2, 0.1, 0.3]], np.float32)
    r = impl(d, [1], [1, 1, 1, 2, 2], [0], [0, 1, 2, 1, 1], max_rank=3)
    # kept: g3(-) then {g1, g2}(+,+) then g4(-) -> AP = (1/2 + 2/3)/2
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-7)
    np.testing.assert_array_equal(r.cmc, [0, 1, 1])


@BOTH
def test_tie_between_true_and_false_match_follows_argsort(impl):
    d = np.array([[0.5, 0.5, 0.1]], np.float32)
    r = impl(d, [1], [1, 2, 3], [0], [1, 1, 1], max_rank=3)
    order = np.argsort(d[0])  # the order torchreid uses, ties included
    expected_pos = int(np.flatnonzero(np.array([1, 2, 3])[order] == 1)[0])
    assert expected_pos in (1, 2)
    assert r.first_match[0] == expected_pos
    assert r.mAP == pytest.approx(1 / (expected_pos + 1), abs=1e-7)


@ARITH
@pytest.mark.parametrize("levels", [None, 7, 40])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_equals_reference_market(seed, levels, arithmetic):
    case = random_case(seed, levels=levels)
    assert_same(
        evaluate_rank(*case, max_rank=20, arithmetic=arithmetic),
        evaluate_rank_reference(*case, max_rank=20, arithmetic=arithmetic),
    )


@pytest.mark.parametrize("levels", [None, 9])
def test_fast_equals_reference_no_camera(levels):
    d, q_pids, g_pids, _, _ = random_case(3, levels=levels)
    qgi = np.full(len(q_pids), -1)
    # let every third query be a gallery image of its own identity
    for i in range(0, len(q_pids), 3):
        same = np.flatnonzero(g_pids == q_pids[i])
        if len(same):
            qgi[i] = same[0]
    kw = dict(max_rank=10, protocol="no_camera", query_gallery_index=qgi)
    assert_same(evaluate_rank(d, q_pids, g_pids, None, None, **kw),
                evaluate_rank_reference(d, q_pids, g_pids, None, None, **kw))


def test_float64_input_kept_as_given_in_float64_arithmetic():
    # two distances equal in float32 but not in float64: only float32 arithmetic sees a tie
    d = np.array([[0.3 + 1e-12, 0.3, 0.9]])
    ids = ([1], [1, 2, 3], [0], [1, 1, 1])
    assert evaluate_rank(d, *ids, arithmetic="float64").first_match[0] == 1
    r32 = evaluate_rank(d, *ids, arithmetic="float32")
    assert r32.first_match[0] == int(np.flatnonzero(np.argsort(d[0].astype(np.float32)) == 0)[0])


# --- CUHK03 -------------------------------------------------------------------------------------


@ARITH
@pytest.mark.parametrize("levels", [None, 8])
def test_cuhk03_fast_equals_reference(levels, arithmetic):
    case = random_case(5, num_q=30, num_g=200, num_ids=20, num_cams=2, levels=levels)
    kw = dict(max_rank=10, protocol="cuhk03", arithmetic=arithmetic, seed=7)
    assert_same(evaluate_rank(*case, **kw), evaluate_rank_reference(*case, **kw))


def test_cuhk03_seeded_and_hand_computed():
    # gallery: id 1 twice (positions 0 and 2 in the ranking), id 2 once (position 1)
    d = np.array([[0.1, 0.2, 0.3]], np.float32)
    args = (d, [1], [1, 2, 1], [0], [1, 1, 1])
    r = evaluate_rank(*args, max_rank=2, protocol="cuhk03", num_repeats=10, seed=3)
    # rank-1 is a hit exactly when the draw for id 1 picks the nearer image: count them
    draws = np.random.RandomState(3).randint(0, np.tile([2, 1], 10)).reshape(10, 2)[:, 0]
    hits = int((draws == 0).sum())
    assert 0 < hits < 10
    assert r.cmc[0] == pytest.approx(hits / 10, abs=1e-6)
    assert r.cmc[1] == pytest.approx(1.0, abs=1e-6)
    assert r.mAP == pytest.approx((1 + 2 / 3) / 2, abs=1e-7)  # AP uses the full list
    again = evaluate_rank(*args, max_rank=2, protocol="cuhk03", num_repeats=10, seed=3)
    np.testing.assert_array_equal(r.cmc, again.cmc)


def test_cuhk03_single_shot_equals_market_when_one_image_per_identity():
    rng = np.random.default_rng(0)
    d = rng.random((15, 30)).astype(np.float32)
    g_pids = np.arange(30)
    q_pids = rng.integers(0, 30, 15)
    a = evaluate_rank(d, q_pids, g_pids, np.zeros(15), np.ones(30), 10, protocol="cuhk03")
    b = evaluate_rank(d, q_pids, g_pids, np.zeros(15), np.ones(30), 10)
    np.testing.assert_allclose(a.cmc, b.cmc, atol=1e-6)
    assert a.mAP == b.mAP


# --- split averaging ----------------------------------------------------------------------------


def test_splits_average_each_split():
    splits = [SplitInputs(*random_case(s, num_q=10, num_g=40, num_ids=10)) for s in range(3)]
    res = evaluate_splits(splits, max_rank=5)
    singles = [evaluate_rank(s.distmat, s.q_pids, s.g_pids, s.q_camids, s.g_camids, max_rank=5)
               for s in splits]
    assert res.mAP == pytest.approx(np.mean([r.mAP for r in singles]))
    np.testing.assert_allclose(res.cmc, np.mean([r.cmc for r in singles], axis=0))
    assert res.summary()["num_splits"] == 3
    with pytest.raises(ValueError):
        evaluate_splits([])


def test_splits_carry_their_own_query_gallery_index():
    """Under no_camera each split leaves out its own query images (a shared index would leave out
    the wrong gallery entries in the second split)."""
    splits = []
    for seed in range(2):
        d, q_pids, g_pids, _, _ = random_case(seed, num_q=8, num_g=30, num_ids=6)
        qgi = np.random.default_rng(seed + 10).permutation(30)[:8]
        g_pids[qgi] = q_pids  # each query image sits in the gallery at qgi
        d[np.arange(8), qgi] = 0.0  # and is its own nearest neighbour
        splits.append(SplitInputs(d, q_pids, g_pids, None, None, qgi))
    res = evaluate_splits(splits, max_rank=5, protocol="no_camera")
    singles = [evaluate_rank(s.distmat, s.q_pids, s.g_pids, None, None, 5, protocol="no_camera",
                             query_gallery_index=s.query_gallery_index) for s in splits]
    assert [r.mAP for r in res.splits] == [r.mAP for r in singles]
    # leaving the query out matters: with it in, every query would be right at rank 1
    assert res.rank(1) < 1.0
    with pytest.raises(ValueError, match="its own"):
        evaluate_splits(splits, protocol="no_camera", query_gallery_index=splits[0].query_gallery_index)


# --- real material: torchreid's own numbers on real features ------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("model", ["market1501", "msmt17"])
def test_equals_torchreid_on_real_features(compat_dir, model, metric):
    """On torchreid's real features: the fast evaluator equals the plain reference bit for bit on
    the distance matrix computed here, and torchreid's stored metrics (computed on another
    machine, whose float32 distances round differently) lie in the interval that rounding allows.
    """
    folder = compat_dir / "cuhk03_pair1_val"
    reference = json.loads(require_file(compat_dir / "reference.json").read_text())
    name = f"features_osnet_x0_25_{model}.npy"
    expected = reference["files"][name]["metrics_cam0_query_vs_cam1_gallery"][metric]
    rows = list(csv.DictReader(require_file(folder / "manifest.csv").open()))
    pids = np.array([int(r["pid"]) for r in rows])
    cams = np.array([int(r["camid"]) for r in rows])
    feats = np.load(require_file(folder / name))
    q, g = cams == 0, cams == 1
    d = compute_distance_matrix(feats[q], feats[g], metric)
    args = (d, pids[q], pids[g], cams[q], cams[g])
    for arithmetic in ("float32", "float64"):  # same matrix, same run: exact
        assert_same(evaluate_rank(*args, arithmetic=arithmetic),
                    evaluate_rank_reference(*args, arithmetic=arithmetic))
    # torchreid's Python evaluator (float64 arithmetic) on its own machine's matrix: within the
    # rounding of two float32 computations of the same distances (tests/_tolerance.py)
    slack = (cosine_slack if metric == "cosine" else euclidean_slack)(feats[q], feats[g])
    worst, best = metric_interval(d, slack, pids[q], pids[g], cams[q], cams[g], arithmetic="float64")
    assert_within("mAP", expected["mAP"], worst.mAP, best.mAP, width=MAP_WIDTH)
    for k in (1, 5, 10, 20):
        assert_within(f"rank{k}", expected[f"rank{k}"], float(worst.cmc[k - 1]),
                      float(best.cmc[k - 1]), width=rank_width(451))


def torchreid_rank_module():
    """torchreid's own evaluator, ``torchreid/reid/metrics/rank.py`` (torchreid 0.2.5), where
    torchreid is installed or its source tree is named by ``OMNIREID_TORCHREID_SRC``. The file
    needs only NumPy, so it is loaded on its own, without importing the rest of torchreid
    (whose package import pulls in its training stack). torchreid is not a dependency of this
    project: without it the comparison is skipped, and ``OMNIREID_REQUIRE_TORCHREID=1`` turns
    that skip into a failure for a machine that is expected to have it."""
    src = os.environ.get("OMNIREID_TORCHREID_SRC")
    if src:
        root = Path(src) / "torchreid"
    else:
        spec = importlib.util.find_spec("torchreid")
        root = Path(spec.origin).parent if spec and spec.origin else None
    path = root / "reid" / "metrics" / "rank.py" if root else None
    if path is None or not path.is_file():
        if os.environ.get("OMNIREID_REQUIRE_TORCHREID") == "1":
            pytest.fail(f"OMNIREID_REQUIRE_TORCHREID=1 but torchreid's rank.py was not found ({path})")
        pytest.skip("torchreid is not installed (optional comparison; set OMNIREID_TORCHREID_SRC)")
    spec = importlib.util.spec_from_file_location("torchreid_rank_under_test", path)
    module = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():  # "Cython evaluation is unavailable": the Python one is used
        warnings.simplefilter("ignore")
        spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_equals_torchreid_evaluator_on_the_same_matrix(compat_dir, metric):
    """torchreid's Python evaluator and ours on one distance matrix computed in this run: the
    same CMC (rank-1..20) and mAP. torchreid sums AP in float64 the way our float64 arithmetic
    does; its mean over queries is NumPy's pairwise sum, ours a running sum, so mAP is compared
    to 1e-12 (summation order only), CMC exactly."""
    rank = torchreid_rank_module()
    folder = compat_dir / "cuhk03_pair1_val"
    rows = list(csv.DictReader(require_file(folder / "manifest.csv").open()))
    pids = np.array([int(r["pid"]) for r in rows])
    cams = np.array([int(r["camid"]) for r in rows])
    feats = np.load(require_file(folder / "features_osnet_x0_25_msmt17.npy"))
    q, g = cams == 0, cams == 1
    d = compute_distance_matrix(feats[q], feats[g], metric)
    # float32 distances do tie (equal values in a row); both evaluators order a row as
    # np.argsort does, so ties are broken the same way and need no special care
    theirs_cmc, theirs_map = rank.evaluate_rank(d.astype(np.float64), pids[q], pids[g], cams[q], cams[g],
                                                max_rank=20, use_cython=False)
    ours = evaluate_rank(d, pids[q], pids[g], cams[q], cams[g], max_rank=20, arithmetic="float64")
    np.testing.assert_array_equal(ours.cmc, theirs_cmc)
    assert ours.mAP == pytest.approx(theirs_map, abs=1e-12)
