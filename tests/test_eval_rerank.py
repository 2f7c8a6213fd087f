"""k-reciprocal re-ranking against a plain dense implementation of the method."""

from __future__ import annotations

import numpy as np
import pytest

from omnireid.evaluation import compute_distance_matrix, evaluate_rank
from omnireid.evaluation.rerank import re_ranking, re_ranking_features

# evaluation numbers from NumPy/PyTorch kernels that are dispatched by instruction set: also run
# with AVX2 forced (make test-isa)
pytestmark = pytest.mark.isa


def dense_re_ranking(q_g, q_q, g_g, k1=20, k2=6, lam=0.3):
    """The method step by step on full matrices (Zhong et al. 2017, as torchreid applies it)."""
    num_q = q_g.shape[0]
    d = np.block([[q_q, q_g], [q_g.T, g_g]])
    n = d.shape[0]
    od = np.power(d, 2).astype(np.float32)
    od = (od / od.max(axis=0)).T  # row i: column i of d, scaled by its maximum
    rank = np.argsort(od, axis=1)

    def reciprocal(i, k):
        forward = rank[i, : k + 1]
        return [int(j) for j in forward if i in rank[j, : k + 1]]

    half = int(np.around(k1 / 2.0))
    v = np.zeros((n, n), np.float32)
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(set(rc) & set(r)) > 2.0 / 3 * len(rc):
                expanded |= set(rc)
        cols = np.array(sorted(expanded))
        w = np.exp(-od[i, cols].astype(np.float64))
        v[i, cols] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)]).astype(np.float32)
    jac = np.zeros((num_q, n), np.float32)
    for i in range(num_q):
        shared = np.minimum(v[i][None, :], v).sum(axis=1)
        jac[i] = 1 - shared / (2 - shared)
    final = jac * (1 - lam) + od[:num_q] * lam
    return final[:, num_q:]


def clustered(seed, num_q=24, num_g=90, ids=12, dim=16):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ids, dim))
    q_pids = rng.integers(0, ids, num_q)
    g_pids = rng.integers(0, ids, num_g)
    q = (centres[q_pids] + 0.8 * rng.standard_normal((num_q, dim))).astype(np.float32)
    g = (centres[g_pids] + 0.8 * rng.standard_normal((num_g, dim))).astype(np.float32)
    return q, g, q_pids, g_pids


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("params", [(20, 6, 0.3), (7, 3, 0.5), (5, 1, 0.0)])
def test_matches_dense_method(metric, params):
    k1, k2, lam = params
    q, g, _, _ = clustered(0)
    q_g = compute_distance_matrix(q, g, metric)
    q_q = compute_distance_matrix(q, q, metric)
    g_g = compute_distance_matrix(g, g, metric)
    expected = dense_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    got = re_ranking(q_g, q_q, g_g, k1, k2, lam, block_size=17)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    from_features = re_ranking_features(q, g, metric, k1, k2, lam, block_size=33)
    np.testing.assert_allclose(from_features, expected, atol=1e-5, rtol=0)


def test_block_size_does_not_change_the_result():
    q, g, _, _ = clustered(1, num_q=30, num_g=150)
    a = re_ranking_features(q, g, block_size=7)
    b = re_ranking_features(q, g, block_size=4096)
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


def test_exact_ties_pick_the_same_neighbours_as_argsort():
    # duplicated gallery images produce exact ties at the neighbour cuts
    q, g, _, _ = clustered(2, num_q=10, num_g=40)
    g = np.concatenate([g, g[:25], g[:5]])
    q_g = compute_distance_matrix(q, g)
    q_q = compute_distance_matrix(q, q)
    g_g = compute_distance_matrix(g, g)
    np.testing.assert_allclose(
        re_ranking(q_g, q_q, g_g, block_size=8), dense_re_ranking(q_g, q_q, g_g), atol=1e-5, rtol=0
    )


def test_re_ranking_improves_map_on_clustered_features():
    q, g, q_pids, g_pids = clustered(3, num_q=40, num_g=200, ids=15)
    cams_q, cams_g = np.zeros(len(q)), np.ones(len(g))
    before = evaluate_rank(compute_distance_matrix(q, g), q_pids, g_pids, cams_q, cams_g)
    after = evaluate_rank(re_ranking_features(q, g), q_pids, g_pids, cams_q, cams_g)
    assert after.mAP > before.mAP


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="expected q_g"):
        re_ranking(np.zeros((3, 4)), np.zeros((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="features must be"):
        re_ranking_features(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="lambda_value"):
        re_ranking_features(np.ones((3, 4)), np.ones((3, 4)), lambda_value=2.0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_faiss_neighbours_match_exact(metric):
    import faiss  # noqa: F401  (the dev extra installs it: a missing faiss must fail, not skip)
    q, g, _, _ = clustered(4)
    exact = re_ranking_features(q, g, metric)
    approx = re_ranking_features(q, g, metric, knn="faiss")
    np.testing.assert_allclose(approx, exact, atol=1e-4, rtol=0)
