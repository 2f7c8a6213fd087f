"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in bounded memory.

The result is that of torchreid's ``re_ranking`` (k1=20, k2=6, lambda=0.3 by default), but no
(Q+G) x (Q+G) matrix is ever held: the distances are visited in blocks of rows, only each
item's k1+1 nearest neighbours are kept, the k-reciprocal encodings V are sparse rows, and the
Jaccard distances are accumulated from an inverted index of V. Memory grows with
``(Q+G) * k1 * k2`` plus the (Q, G) output, instead of ``(Q+G)^2``.

The steps, with N = Q + G items (queries first) and d the N x N distance matrix as torchreid
assembles it from the three blocks:

1. ``od[i, :] = d[:, i]**2 / max(d[:, i]**2)`` (float32), and ``initial_rank[i]`` its ascending
   order; only the first ``k1 + 1`` entries are needed. Where equal distances straddle one of the
   cuts used (``k2``, ``round(k1/2) + 1``, ``k1 + 1``) the full row is ordered with ``np.argsort``,
   as torchreid orders it, so the same neighbours are chosen.
2. R(i) = k-reciprocal neighbours of i within the first k1+1; each member c whose own
   round(k1/2)-reciprocal set shares more than 2/3 of its members with R(i) adds that set.
   ``V[i, j] = exp(-od[i, j]) / sum`` over the expanded set.
3. Query expansion: ``V[i] <- mean of V over the first k2 entries of initial_rank[i]``.
4. ``jaccard[i, j] = 1 - s / (2 - s)`` with ``s = sum_l min(V[i, l], V[j, l])``; the result is
   ``(1 - lambda) * jaccard + lambda * od`` for query rows and gallery columns.

Sums are taken in float64 where torchreid sums in float32, so results agree to about 1e-7.
With ``knn="faiss"`` (extra ``index``) step 1's neighbour search runs in FAISS; exact ties may
then pick different, equally near neighbours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from omnireid.errors import UsageError
from omnireid.evaluation.distances import DISTANCE_METRICS, compute_distance_matrix
from omnireid.extras import require
from omnireid.registry import check_name

logger = logging.getLogger(__name__)

BlockFn = Callable[[int, int], np.ndarray]
PairFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ----------------------------------------------------------------------------------------------
# public entry points


def re_ranking(
    q_g_dist: np.ndarray,
    q_q_dist: np.ndarray,
    g_g_dist: np.ndarray,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block_size: int = 1024,
) -> np.ndarray:
    """Re-ranked query-gallery distances from the three distance blocks (torchreid's signature).

    Args:
        q_g_dist: (Q, G), q_q_dist: (Q, Q), g_g_dist: (G, G) distances.
        k1, k2, lambda_value: the method's parameters (paper defaults).
        block_size: rows handled at once; bounds the working memory.

    Returns:
        (Q, G) float32 re-ranked distances.
    """
    q_g = np.asarray(q_g_dist)
    q_q = np.asarray(q_q_dist)
    g_g = np.asarray(g_g_dist)
    num_q, num_g = q_g.shape if q_g.ndim == 2 else (-1, -1)
    if q_g.ndim != 2 or q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise UsageError(
            f"expected q_g (Q, G), q_q (Q, Q), g_g (G, G); got {q_g.shape}, {q_q.shape}, {g_g.shape}"
        )

    def block(start: int, stop: int) -> np.ndarray:
        # rows i of the block hold column i of the assembled matrix [[q_q, q_g], [q_g.T, g_g]]
        parts = []
        if start < num_q:
            s, e = start, min(stop, num_q)
            parts.append(np.concatenate([q_q[:, s:e].T, q_g[s:e, :]], axis=1))
        if stop > num_q:
            s, e = max(start, num_q) - num_q, stop - num_q
            parts.append(np.concatenate([q_g[:, s:e].T, g_g[:, s:e].T], axis=1))
        return np.concatenate(parts, axis=0)

    def pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        # entry [j, i] of the assembled matrix
        out = np.empty(i.shape, np.result_type(q_g, q_q, g_g))
        jq, iq = j < num_q, i < num_q
        m = jq & iq
        out[m] = q_q[j[m], i[m]]
        m = jq & ~iq
        out[m] = q_g[j[m], i[m] - num_q]
        m = ~jq & iq
        out[m] = q_g[i[m], j[m] - num_q]
        m = ~jq & ~iq
        out[m] = g_g[j[m] - num_q, i[m] - num_q]
        return out

    return _re_rank(block, pairs, num_q, num_g, k1, k2, lambda_value, block_size)


def re_ranking_features(
    q_feats: np.ndarray,
    g_feats: np.ndarray,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    block_size: int = 1024,
    knn: Literal["exact", "faiss"] = "exact",
) -> np.ndarray:
    """Re-ranked distances computed from features, without any (Q+G)^2 matrix.

    Equivalent to ``re_ranking(dist(q, g), dist(q, q), dist(g, g))`` with ``dist`` the chosen
    metric of :func:`omnireid.evaluation.distances.compute_distance_matrix`.

    Args:
        q_feats: (Q, D), g_feats: (G, D) features.
        metric: ``"euclidean"`` (squared) or ``"cosine"``.
        knn: ``"exact"`` (blockwise distances) or ``"faiss"`` (needs ``pip install omnireid[index]``).

    Returns:
        (Q, G) float32 re-ranked distances.
    """
    check_name("distance metric", metric, DISTANCE_METRICS)
    q = np.ascontiguousarray(q_feats, dtype=np.float32)
    g = np.ascontiguousarray(g_feats, dtype=np.float32)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise UsageError(f"features must be (Q, D) and (G, D); got {q.shape} and {g.shape}")
    feats = np.concatenate([q, g], axis=0)
    num_q, num_g = len(q), len(g)
    if metric == "cosine":
        unit = torch.nn.functional.normalize(torch.from_numpy(feats), dim=1)
    sq_norm = (torch.from_numpy(feats) ** 2).sum(1)

    def block(start: int, stop: int) -> np.ndarray:
        return compute_distance_matrix(feats[start:stop], feats, metric)

    def pairs(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        ti, tj = torch.from_numpy(i), torch.from_numpy(j)
        if metric == "cosine":
            return (1 - (unit[tj] * unit[ti]).sum(1)).numpy()
        x = torch.from_numpy(feats)
        return (sq_norm[tj] + sq_norm[ti] - 2 * (x[tj] * x[ti]).sum(1)).numpy()

    if knn == "faiss":
        return _re_rank(block, pairs, num_q, num_g, k1, k2, lambda_value, block_size,
                        neighbours=_faiss_neighbours(feats, metric, k1 + 2))
    if knn != "exact":
        raise UsageError(f"knn must be 'exact' or 'faiss', got {knn!r}")
    return _re_rank(block, pairs, num_q, num_g, k1, k2, lambda_value, block_size)


# ----------------------------------------------------------------------------------------------
# the algorithm


def _re_rank(
    block: BlockFn,
    pairs: PairFn,
    num_q: int,
    num_g: int,
    k1: int,
    k2: int,
    lambda_value: float,
    block_size: int,
    neighbours: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    if k1 < 1 or k2 < 1:
        raise UsageError(f"k1 and k2 must be >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise UsageError(f"lambda_value must be in [0, 1], got {lambda_value}")
    num = num_q + num_g
    out = np.empty((num_q, num_g), np.float32)  # holds od[query, gallery] until the end
    if neighbours is None:
        initial, row_max = _nearest(block, num, num_q, k1, k2, block_size, out)
    else:
        initial, row_max = _nearest_from_index(block, neighbours, num_q, block_size, out)
    logger.debug("re-ranking: neighbours found for %d items", num)
    v_ptr, v_idx, v_val = _encodings(initial, row_max, pairs, k1)
    if k2 != 1:
        v_ptr, v_idx, v_val = _query_expansion(initial[:, :k2], v_ptr, v_idx, v_val, block_size)
    _jaccard_into(out, v_ptr, v_idx, v_val, num_q, lambda_value, max(block_size // 8, 16))
    return out


def _squared(raw: np.ndarray):
    """Squared distances as a float32 tensor (float32 input squared in place)."""
    if raw.dtype == np.float32:
        return torch.from_numpy(raw).square_()
    return torch.from_numpy(np.power(raw, 2).astype(np.float32))


def _od_rows(raw: np.ndarray) -> np.ndarray:
    """Squared, row-max-normalised distances in float32, as torchreid forms them."""
    sq = _squared(raw)
    return (sq / sq.max(dim=1, keepdim=True).values).numpy()


def _nearest(block, num, num_q, k1, k2, block_size, out):
    """Each item's first k1+1 neighbours in ``np.argsort`` order, and its row maximum.

    Ordering by the squared distance orders by ``od`` too (dividing by the row maximum keeps
    the order); only ties that the division creates are checked on the ``od`` values.
    """
    width = min(k1 + 1, num)
    cuts = sorted({c for c in (k2, int(np.around(k1 / 2.0)) + 1, k1 + 1) if c < num})
    take = min(k1 + 2, num)
    initial = np.empty((num, width), np.int64)
    row_max = np.empty(num, np.float32)
    for start in range(0, num, block_size):
        stop = min(start + block_size, num)
        sq = _squared(block(start, stop))
        rmax = sq.max(dim=1, keepdim=True).values
        row_max[start:stop] = rmax[:, 0].numpy()
        if start < num_q:
            q_rows = min(stop, num_q) - start
            out[start : start + q_rows] = (sq[:q_rows, num_q:] / rmax[:q_rows]).numpy()
        vals, idx = torch.topk(sq, take, dim=1, largest=False, sorted=True)
        od_top = (vals / rmax).numpy()
        idx = idx.numpy()
        tied = np.zeros(len(idx), bool)
        for c in cuts:
            tied |= od_top[:, c - 1] == od_top[:, c]
        for r in np.flatnonzero(tied):
            # order the whole row exactly as np.argsort orders torchreid's od
            idx[r, :take] = np.argsort((sq[r] / rmax[r]).numpy())[:take]
        initial[start:stop] = idx[:, :width]
    return initial, row_max


def _nearest_from_index(block, neighbours, num_q, block_size, out):
    initial, row_max = neighbours()
    for start in range(0, num_q, block_size):  # od for query rows is still needed in full
        stop = min(start + block_size, num_q)
        out[start:stop] = _od_rows(block(start, stop))[:, num_q:]
    return initial, row_max


def _faiss_neighbours(feats: np.ndarray, metric: str, take: int):
    def run() -> tuple[np.ndarray, np.ndarray]:
        faiss = require("faiss", "index", "knn='faiss'")
        x = np.ascontiguousarray(feats, np.float32)
        num, dim = x.shape
        if metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
            index = faiss.IndexFlatIP(dim)
            index.add(x)
            sims, idx = index.search(x, take)
            dist = 1 - sims
            far, _ = index.search(-x, 1)  # least similar item
            far_dist = 1 + far[:, 0]
        else:
            index = faiss.IndexFlatL2(dim)
            index.add(x)
            dist, idx = index.search(x, take)
            # farthest item: max |y|^2 - 2 x.y, an inner product with [y, |y|^2]
            norms = (x.astype(np.float64) ** 2).sum(1)
            aug = np.concatenate([x, norms[:, None].astype(np.float32)], axis=1)
            far_index = faiss.IndexFlatIP(dim + 1)
            far_index.add(np.ascontiguousarray(aug))
            query = np.concatenate([-2 * x, np.ones((num, 1), np.float32)], axis=1)
            far, _ = far_index.search(np.ascontiguousarray(query), 1)
            far_dist = far[:, 0] + norms
        row_max = np.power(np.maximum(far_dist, 0), 2).astype(np.float32)
        return idx[:, : take - 1].astype(np.int64), row_max

    return run


def _reciprocal(neigh: np.ndarray) -> np.ndarray:
    """(N, K) bool: whether item i is among the first K neighbours of its a-th neighbour."""
    out = np.empty(neigh.shape, bool)
    rows = np.arange(len(neigh))
    for start in range(0, len(neigh), 4096):
        sl = slice(start, start + 4096)
        back = neigh[neigh[sl]]  # (B, K, K)
        out[sl] = (back == rows[sl, None, None]).any(axis=2)
    return out


def _encodings(initial: np.ndarray, row_max: np.ndarray, pairs: PairFn, k1: int):
    """Sparse rows of V (CSR: pointers, sorted column indices, float32 values)."""
    num, width = initial.shape
    half = min(int(np.around(k1 / 2.0)) + 1, width)
    fwd = initial
    hfwd = initial[:, :half]
    recip = _reciprocal(fwd)
    hrecip = _reciprocal(hfwd)
    hsize = hrecip.sum(1)

    ptrs = [np.zeros(1, np.int64)]
    idx_parts, val_parts = [], []
    step = 2048
    for start in range(0, num, step):
        sl = slice(start, min(start + step, num))
        f, rc = fwd[sl], recip[sl]  # (B, K)
        rset = np.where(rc, f, -1)  # R(i), -1 where not reciprocal
        cand_sets = np.where(hrecip[f], hfwd[f], -2)  # (B, K, H): R_half(c) for each neighbour c
        # members of R_half(c) that are in R(i)
        inside = (cand_sets[:, :, :, None] == rset[:, None, None, :]).any(axis=3)
        overlap = inside.sum(2)
        accept = rc & (overlap > (2.0 / 3) * hsize[f])
        extra = np.where(accept[:, :, None], cand_sets, -1).reshape(len(f), -1)
        members = np.concatenate([rset, extra], axis=1)
        members = np.where(members < 0, np.iinfo(np.int64).max, members)
        members.sort(axis=1)
        dup = np.zeros(members.shape, bool)
        dup[:, 1:] = members[:, 1:] == members[:, :-1]
        valid = (members != np.iinfo(np.int64).max) & ~dup
        counts = valid.sum(1)
        rows = np.repeat(np.arange(sl.start, sl.stop), counts)
        cols = members[valid]
        od = (np.power(pairs(rows, cols), 2).astype(np.float32) / row_max[rows]).astype(np.float32)
        weight = np.exp(-od)
        seg = np.repeat(np.arange(len(counts)), counts)
        total = np.bincount(seg, weights=weight, minlength=len(counts)).astype(np.float32)
        idx_parts.append(cols)
        val_parts.append((weight / total[seg]).astype(np.float32))
        ptrs.append(np.cumsum(counts) + ptrs[-1][-1])
    ptr = np.concatenate([ptrs[0]] + [p for p in ptrs[1:]])
    return ptr, np.concatenate(idx_parts), np.concatenate(val_parts)


def _query_expansion(first_k2, ptr, idx, val, block_size):
    """V[i] <- mean of V over i's first k2 neighbours (sparse rows in, sparse rows out)."""
    num, k2 = first_k2.shape
    lengths = np.diff(ptr)
    new_ptr = [np.zeros(1, np.int64)]
    idx_parts, val_parts = [], []
    for start in range(0, num, block_size):
        stop = min(start + block_size, num)
        src = first_k2[start:stop].reshape(-1)  # rows of V to gather
        cnt = lengths[src]
        owner = np.repeat(np.repeat(np.arange(start, stop), k2), cnt)
        pos = _ranges(ptr[src], cnt)
        key = (owner - start) * num + idx[pos]
        uniq, inverse = np.unique(key, return_inverse=True)
        summed = np.bincount(inverse, weights=val[pos])
        rows = uniq // num
        idx_parts.append(uniq % num)
        val_parts.append((summed / k2).astype(np.float32))
        counts = np.bincount(rows, minlength=stop - start)
        new_ptr.append(np.cumsum(counts) + new_ptr[-1][-1])
    return np.concatenate(new_ptr), np.concatenate(idx_parts), np.concatenate(val_parts)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each pair."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + (np.arange(total) - offsets)


def _jaccard_into(out, ptr, idx, val, num_q, lambda_value, q_block):
    """out[q, g] <- (1 - lambda) * jaccard + lambda * out[q, g] (out holds od on entry)."""
    num_g = out.shape[1]
    num = len(ptr) - 1
    # inverted index over gallery rows: for each column l, the gallery rows j with V[j, l] > 0
    rows = np.repeat(np.arange(num), np.diff(ptr))
    in_gallery = rows >= num_q
    g_rows, g_cols, g_vals = rows[in_gallery] - num_q, idx[in_gallery], val[in_gallery]
    order = np.argsort(g_cols, kind="stable")
    g_rows, g_cols, g_vals = g_rows[order], g_cols[order], g_vals[order]
    col_ptr = np.searchsorted(g_cols, np.arange(num + 1))
    col_len = np.diff(col_ptr)
    for start in range(0, num_q, q_block):
        stop = min(start + q_block, num_q)
        a, b = ptr[start], ptr[stop]
        q_owner = np.repeat(np.arange(stop - start), np.diff(ptr[start : stop + 1]))
        cols, q_vals = idx[a:b], val[a:b]
        cnt = col_len[cols]
        pos = _ranges(col_ptr[cols], cnt)
        owner = np.repeat(q_owner, cnt)
        mins = np.minimum(np.repeat(q_vals, cnt), g_vals[pos])
        shared = np.bincount(
            owner * num_g + g_rows[pos], weights=mins, minlength=(stop - start) * num_g
        ).reshape(stop - start, num_g)
        s = shared.astype(np.float32)
        jaccard = 1 - s / (2.0 - s)
        out[start:stop] = jaccard * (1 - lambda_value) + out[start:stop] * lambda_value
