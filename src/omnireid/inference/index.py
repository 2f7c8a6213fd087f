"""Gallery search: an exact index (chunked matrix product) and FAISS indexes (flat, IVF, HNSW).

All indexes store ``(N, D)`` float32 vectors and answer ``search(queries, k)`` with the ``k``
best gallery rows per query, best first. ``metric`` is ``"ip"`` (inner product; cosine similarity
for L2-normalised embeddings, higher is better) or ``"l2"`` (squared euclidean distance, lower
is better). Indexes save to and load from one ``.npz`` file (written atomically).
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from omnireid.errors import DataError, MissingFileError, UsageError
from omnireid.extras import require
from omnireid.files import atomic_write
from omnireid.registry import check_name, lookup

logger = logging.getLogger(__name__)

#: How an index scores a match: ``ip`` (inner product, higher is better) or ``l2`` (squared
#: euclidean distance, lower is better). Evaluation's distances are
#: :data:`omnireid.evaluation.distances.DISTANCE_METRICS`.
INDEX_METRICS = ("ip", "l2")
FAISS_KINDS = ("flat", "ivf", "hnsw")


@dataclass
class SearchResult:
    """Top-k matches.

    Attributes:
        indices: ``(Q, k)`` int64 gallery rows, best first (-1 where fewer than k exist).
        scores: ``(Q, k)`` float32, similarity (``ip``) or squared distance (``l2``).
    """

    indices: np.ndarray
    scores: np.ndarray


def _as_matrix(x: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise UsageError(f"{what} must be (N, {dim or 'D'}), got shape {x.shape}")
    return np.ascontiguousarray(x)


def _save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def topk(scores: np.ndarray, k: int, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a ``(Q, N)`` score matrix, sorted best first (ties: lower index)."""
    n = scores.shape[1]
    k = min(k, n)
    key = -scores if largest else scores
    if k < n:
        part = np.argpartition(key, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    part_keys = np.take_along_axis(key, part, 1)
    order = np.lexsort((part, part_keys), axis=1)
    idx = np.take_along_axis(part, order, 1)
    return idx.astype(np.int64), np.take_along_axis(scores, idx, 1)


class ExactIndex:
    """Brute-force search by chunked matrix products (NumPy BLAS); exact results.

    Args:
        dim: vector dimension D.
        metric: ``"ip"`` or ``"l2"``.
        chunk: gallery rows per matrix product (bounds memory to ``Q * chunk`` floats).
    """

    kind = "exact"

    def __init__(self, dim: int, metric: str = "ip", chunk: int = 65536) -> None:
        check_name("index metric", metric, INDEX_METRICS)
        self.dim = dim
        self.metric = metric
        self.chunk = chunk
        self._parts: list[np.ndarray] = []
        self._vectors: np.ndarray | None = np.zeros((0, dim), np.float32)
        self._sq_norms: np.ndarray | None = None

    @property
    def vectors(self) -> np.ndarray:
        """``(N, D)`` float32 stored vectors."""
        if self._parts:
            parts = [self._vectors, *self._parts] if len(self._vectors) else self._parts
            self._vectors = parts[0] if len(parts) == 1 else np.concatenate(parts)
            self._parts = []
            self._sq_norms = None
        return self._vectors

    @property
    def ntotal(self) -> int:
        return len(self._vectors) + sum(len(p) for p in self._parts)

    def add(self, vectors: np.ndarray) -> None:
        """Append ``(n, D)`` vectors; their rows get the next ids."""
        self._parts.append(_as_matrix(vectors, self.dim, "vectors"))

    def search(self, queries: np.ndarray, k: int = 10) -> SearchResult:
        """Top-``k`` gallery rows for each of the ``(Q, D)`` queries."""
        q = _as_matrix(queries, self.dim, "queries")
        g = self.vectors
        largest = self.metric == "ip"
        if len(g) == 0 or k < 1:
            return SearchResult(np.full((len(q), max(k, 0)), -1, np.int64),
                                np.full((len(q), max(k, 0)), np.nan, np.float32))
        if self.metric == "l2" and self._sq_norms is None:
            self._sq_norms = np.einsum("ij,ij->i", g, g)
        best_idx = best_val = None
        for start in range(0, len(g), self.chunk):
            block = g[start:start + self.chunk]
            s = q @ block.T
            if self.metric == "l2":
                s = self._sq_norms[start:start + self.chunk][None] - 2 * s
            idx, val = topk(s, k, largest)
            idx += start
            if best_idx is None:
                best_idx, best_val = idx, val
            else:
                cat_val = np.concatenate([best_val, val], 1)
                cat_idx = np.concatenate([best_idx, idx], 1)
                sel, best_val = topk(cat_val, k, largest)
                best_idx = np.take_along_axis(cat_idx, sel, 1)
                # keep ties resolved by gallery id
                best_idx, best_val = _sort_ties(best_idx, best_val, largest)
        if self.metric == "l2":
            best_val = best_val + np.einsum("ij,ij->i", q, q)[:, None]
        return _pad(SearchResult(best_idx, best_val.astype(np.float32)), k)

    def save(self, path: str | os.PathLike) -> Path:
        meta = {"kind": self.kind, "dim": self.dim, "metric": self.metric}
        return _save_npz(path, meta=np.array(json.dumps(meta)), vectors=self.vectors)


def _sort_ties(idx: np.ndarray, val: np.ndarray, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((idx, -val if largest else val), axis=1)
    return np.take_along_axis(idx, order, 1), np.take_along_axis(val, order, 1)


def _pad(result: SearchResult, k: int) -> SearchResult:
    q, got = result.indices.shape
    if got >= k:
        return result
    idx = np.full((q, k), -1, np.int64)
    val = np.full((q, k), np.nan, np.float32)
    idx[:, :got] = result.indices
    val[:, :got] = result.scores
    return SearchResult(idx, val)


def load_faiss():
    """The faiss module, or :class:`~omnireid.errors.MissingExtraError` naming ``omnireid[index]``."""
    return require("faiss", "index", "the FAISS index")


class FaissIndex:
    """A FAISS index: ``flat`` (exact), ``ivf`` (inverted lists over k-means cells) or ``hnsw``.

    Args:
        dim: vector dimension D.
        kind: ``"flat"``, ``"ivf"`` or ``"hnsw"``.
        metric: ``"ip"`` or ``"l2"``.
        nlist: IVF cells (default ~4*sqrt(N) chosen at the first ``add``).
        nprobe: IVF cells visited per query.
        hnsw_m: HNSW graph degree.
        ef_search, ef_construction: HNSW search / build breadth.

    ``ivf`` trains its k-means on the first vectors added (a sample of at most 100 per cell).
    """

    def __init__(self, dim: int, kind: str = "flat", metric: str = "ip", nlist: int | None = None,
                 nprobe: int = 16, hnsw_m: int = 32, ef_search: int = 128,
                 ef_construction: int = 200) -> None:
        check_name("FAISS index kind", kind, FAISS_KINDS)
        check_name("index metric", metric, INDEX_METRICS)
        self.faiss = load_faiss()
        self.dim, self.kind, self.metric = dim, kind, metric
        self.nlist, self.nprobe = nlist, nprobe
        self.hnsw_m, self.ef_search, self.ef_construction = hnsw_m, ef_search, ef_construction
        self._metric = (self.faiss.METRIC_INNER_PRODUCT if metric == "ip"
                        else self.faiss.METRIC_L2)
        self.index = None
        if kind == "flat":
            self.index = self.faiss.IndexFlat(dim, self._metric)
        elif kind == "hnsw":
            self.index = self.faiss.IndexHNSWFlat(dim, hnsw_m, self._metric)
            self.index.hnsw.efConstruction = ef_construction
            self.index.hnsw.efSearch = ef_search

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def train(self, vectors: np.ndarray, seed: int = 0) -> None:
        """Train the IVF quantiser on ``(n, D)`` vectors (no-op for flat/HNSW)."""
        if self.kind != "ivf":
            return
        x = _as_matrix(vectors, self.dim, "vectors")
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(len(x))), len(x) // 39 or 1))
        self.nlist = nlist
        quantizer = self.faiss.IndexFlat(self.dim, self._metric)
        index = self.faiss.IndexIVFFlat(quantizer, self.dim, nlist, self._metric)
        index.cp.seed = seed
        sample = x
        if len(x) > 100 * nlist:
            rng = np.random.default_rng(seed)
            sample = x[np.sort(rng.choice(len(x), 100 * nlist, replace=False))]
        logger.info("training IVF with %d cells on %d vectors", nlist, len(sample))
        index.train(sample)
        index.nprobe = self.nprobe
        self.index = index

    def add(self, vectors: np.ndarray) -> None:
        """Append ``(n, D)`` vectors (trains an IVF index on them first if untrained)."""
        x = _as_matrix(vectors, self.dim, "vectors")
        if self.index is None:
            self.train(x)
        self.index.add(x)

    def set_search_params(self, nprobe: int | None = None, ef_search: int | None = None) -> None:
        """Change IVF ``nprobe`` / HNSW ``efSearch`` (the speed/recall trade-off)."""
        if nprobe is not None:
            self.nprobe = nprobe
            if self.kind == "ivf" and self.index is not None:
                self.index.nprobe = nprobe
        if ef_search is not None:
            self.ef_search = ef_search
            if self.kind == "hnsw":
                self.index.hnsw.efSearch = ef_search

    def search(self, queries: np.ndarray, k: int = 10) -> SearchResult:
        """Top-``k`` gallery rows for each of the ``(Q, D)`` queries."""
        q = _as_matrix(queries, self.dim, "queries")
        if self.index is None or self.ntotal == 0:
            return SearchResult(np.full((len(q), k), -1, np.int64),
                                np.full((len(q), k), np.nan, np.float32))
        scores, idx = self.index.search(q, k)
        scores = scores.astype(np.float32)
        scores[idx < 0] = np.nan
        return SearchResult(idx.astype(np.int64), scores)

    def save(self, path: str | os.PathLike) -> Path:
        meta = {"kind": f"faiss-{self.kind}", "dim": self.dim, "metric": self.metric,
                "nlist": self.nlist, "nprobe": self.nprobe, "hnsw_m": self.hnsw_m,
                "ef_search": self.ef_search, "ef_construction": self.ef_construction}
        blob = (self.faiss.serialize_index(self.index) if self.index is not None
                else np.zeros(0, np.uint8))
        return _save_npz(path, meta=np.array(json.dumps(meta)), faiss=np.asarray(blob))


GalleryIndex = ExactIndex | FaissIndex


def _faiss_builder(kind: str) -> Callable[..., GalleryIndex]:
    def build(dim: int, metric: str, **options) -> GalleryIndex:
        return FaissIndex(dim, kind, metric, **options)

    return build


#: The index kinds by name (``omnireid search --index``): ``builder(dim, metric, **options)``.
INDEX_KINDS: dict[str, Callable[..., GalleryIndex]] = {
    "exact": ExactIndex,
    **{f"faiss-{kind}": _faiss_builder(kind) for kind in FAISS_KINDS},
}


def build_index(vectors: np.ndarray, backend: str = "exact", metric: str = "ip",
                **options) -> GalleryIndex:
    """Build an index over ``(N, D)`` vectors.

    ``backend``: ``"exact"``, ``"faiss-flat"``, ``"faiss-ivf"`` or ``"faiss-hnsw"``; ``options``
    go to :class:`ExactIndex` / :class:`FaissIndex`.
    """
    build = lookup("index backend", backend, INDEX_KINDS)
    x = _as_matrix(vectors, None, "vectors")
    index = build(x.shape[1], metric, **options)
    index.add(x)
    return index


def load_index(path: str | os.PathLike) -> GalleryIndex:
    """Load an index written by ``save``."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"index file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is not an omnireid index file: {exc}") from None
    if meta["kind"] == "exact":
        index = ExactIndex(meta["dim"], meta["metric"])
        index.add(arrays["vectors"])
        return index
    kind = meta["kind"].removeprefix("faiss-")
    index = FaissIndex(meta["dim"], kind, meta["metric"], nlist=meta["nlist"],
                       nprobe=meta["nprobe"], hnsw_m=meta["hnsw_m"], ef_search=meta["ef_search"],
                       ef_construction=meta["ef_construction"])
    if arrays["faiss"].size:
        index.index = index.faiss.deserialize_index(arrays["faiss"])
        index.set_search_params(nprobe=meta["nprobe"], ef_search=meta["ef_search"])
    return index


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the true top-``k`` ids (``(Q, >=k)``) present in ``found[:, :k]``."""
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) / k
