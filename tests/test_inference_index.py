"""Gallery indexes: exact search against a plain sort, FAISS against exact, save/load."""

from __future__ import annotations

import faiss  # noqa: F401  (CI installs the dev extra; a missing faiss must fail, not skip)
import numpy as np
import pytest

from omnireid.inference.index import (
    ExactIndex,
    FaissIndex,
    build_index,
    load_index,
    recall_at_k,
    topk,
)


def clustered(n: int, d: int = 32, centers: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d))
    x = c[rng.integers(0, centers, n)] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(q: np.ndarray, g: np.ndarray, k: int, metric: str) -> np.ndarray:
    out = []
    for v in q:
        if metric == "ip":
            s = [float(np.dot(v.astype(np.float64), w)) for w in g]
            out.append(sorted(range(len(g)), key=lambda j: (-s[j], j))[:k])
        else:
            s = [float(((v.astype(np.float64) - w) ** 2).sum()) for w in g]
            out.append(sorted(range(len(g)), key=lambda j: (s[j], j))[:k])
    return np.array(out)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_matches_brute_force_across_chunks(metric: str) -> None:
    g, q = clustered(300), clustered(7, seed=1)
    index = ExactIndex(32, metric, chunk=64)  # several chunks, last one partial
    index.add(g[:100])
    index.add(g[100:])
    assert index.ntotal == 300
    res = index.search(q, 5)
    np.testing.assert_array_equal(res.indices, brute_force(q, g, 5, metric))
    expect = (q @ g.T) if metric == "ip" else ((q[:, None] - g[None]) ** 2).sum(-1)
    np.testing.assert_allclose(res.scores, np.take_along_axis(expect, res.indices, 1), atol=1e-4)


def test_topk_and_padding() -> None:
    idx, val = topk(np.array([[0.1, 0.5, 0.5, -1.0]]), 3, largest=True)
    assert idx.tolist() == [[1, 2, 0]]
    res = ExactIndex(4).search(np.ones((1, 4), np.float32), 2)
    assert res.indices.tolist() == [[-1, -1]]
    small = build_index(np.eye(4, dtype=np.float32), "exact")
    res = small.search(np.eye(4, dtype=np.float32)[:1], 6)
    assert res.indices[0, 0] == 0 and res.indices[0, 4:].tolist() == [-1, -1]


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_faiss_flat_equals_exact(metric: str) -> None:
    g, q = clustered(500), clustered(20, seed=2)
    exact = build_index(g, "exact", metric).search(q, 10)
    flat = build_index(g, "faiss-flat", metric).search(q, 10)
    np.testing.assert_array_equal(flat.indices, exact.indices)
    np.testing.assert_allclose(flat.scores, exact.scores, atol=1e-4)


def test_ivf_and_hnsw_find_the_neighbours() -> None:
    g, q = clustered(2000, centers=40), clustered(30, centers=40, seed=3)
    truth = build_index(g, "exact").search(q, 10).indices
    ivf = build_index(g, "faiss-ivf", nlist=16, nprobe=16)  # all cells: exact
    assert recall_at_k(ivf.search(q, 10).indices, truth) == 1.0
    hnsw = build_index(g, "faiss-hnsw", ef_search=64)
    assert recall_at_k(hnsw.search(q, 10).indices, truth) >= 0.9


@pytest.mark.parametrize("backend", ["exact", "faiss-flat", "faiss-ivf", "faiss-hnsw"])
def test_save_load_round_trip(backend: str, tmp_path) -> None:
    g, q = clustered(400), clustered(5, seed=4)
    options = {"nlist": 8, "nprobe": 3} if backend == "faiss-ivf" else {}
    index = build_index(g, backend, **options)
    before = index.search(q, 7)
    path = index.save(tmp_path / "idx.npz")
    loaded = load_index(path)
    assert type(loaded) is type(index) and loaded.ntotal == 400
    after = loaded.search(q, 7)
    np.testing.assert_array_equal(after.indices, before.indices)
    np.testing.assert_allclose(after.scores, before.scores)
    if isinstance(loaded, FaissIndex) and loaded.kind == "ivf":
        assert loaded.index.nprobe == 3


def test_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="backend"):
        build_index(np.zeros((2, 3), np.float32), "annoy")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        ExactIndex(3).add(np.zeros((2, 4)))
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_index(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.npz"):
        load_index(bad)


def test_recall_at_k_by_hand() -> None:
    assert recall_at_k(np.array([[1, 2, 3]]), np.array([[3, 4, 1]]), k=3) == pytest.approx(2 / 3)
