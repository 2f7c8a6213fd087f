"""Rank metrics for re-identification: CMC, mAP and mINP under the standard protocols.

Protocols (``protocol=``):

``"market"``
    Market-1501 / DukeMTMC-reID / MSMT17. For each query, gallery images showing the same identity
    under the same camera are removed from its ranked list; queries whose identity is then absent
    from the gallery are skipped (and counted in ``num_skipped``).
``"cuhk03"``
    CUHK03's single-gallery-shot metric: removal as above, then for each query one gallery image
    per identity is drawn at random and the CMC is averaged over ``num_repeats`` draws. The draws
    come from ``np.random.RandomState(seed)`` (so the same seed gives the same numbers). mAP and
    mINP use the full list, as for ``"market"``.
``"no_camera"``
    For data without camera ids. Every gallery image of the query's identity counts as a true
    match, except the query image itself when it is also in the gallery: pass
    ``query_gallery_index`` (Q,) with its gallery index, or -1 where it is not there.

Numbers equal those of torchreid's evaluators on the same distance matrix, ties included:
ties are broken the way ``np.argsort`` (default kind) orders them, exactly as torchreid's code
does. ``arithmetic="float32"`` (default) reproduces torchreid's compiled evaluator bit for bit
(it casts the distances to float32 and accumulates AP, mAP and CUHK03's CMC in float32);
``arithmetic="float64"`` reproduces its pure-Python evaluator bit for bit (distances used as
given, AP and mAP in float64). The CMC of the ``"market"`` protocol is the same in both. mINP
(Ye et al., TPAMI 2021: the number of true matches over the position of the hardest one) has no
torchreid counterpart and is computed in float64.

Two documented departures, both where torchreid's evaluators break down: when fewer than
``max_rank`` gallery images (identities for ``"cuhk03"``) remain for a query, its CMC stays at
its last value up to ``max_rank`` (torchreid's compiled code reads stale or zeroed memory there
and its Python code fails); and when no query has a valid match we raise ``ValueError``.

The fast path here avoids the full sort of every row: the position of each true match in the
ranked list is a count of the smaller distances, taken over the few gallery entries no farther
than the query's farthest true match. Rows where a true match ties with another kept entry fall
back to ``np.argsort`` so that the tie is broken as torchreid breaks it.
:mod:`omnireid.evaluation.rank_reference` holds the plain implementation the tests compare with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omnireid.errors import UsageError

logger = logging.getLogger(__name__)

Protocol = Literal["market", "cuhk03", "no_camera"]
Arithmetic = Literal["float32", "float64"]
PROTOCOLS: tuple[str, ...] = ("market", "cuhk03", "no_camera")


@dataclass(frozen=True)
class RankResult:
    """Rank metrics of one evaluation.

    ``cmc[k - 1]`` is the rank-k accuracy, (max_rank,) float32. ``query_ap`` and ``query_inp`` are
    (Q,) float64 per-query values, NaN for skipped queries; ``first_match`` (Q,) int64 is the
    0-based position of each query's first true match in its ranked list, -1 when skipped.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped: int
    protocol: str
    query_ap: np.ndarray = field(repr=False)
    query_inp: np.ndarray = field(repr=False)
    first_match: np.ndarray = field(repr=False)

    def rank(self, k: int) -> float:
        """Rank-k accuracy (the CMC at k; the last value when k exceeds the curve)."""
        if k < 1:
            raise UsageError(f"rank must be >= 1, got {k}")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self, ranks: Sequence[int] = (1, 5, 10, 20)) -> dict[str, float | int | str]:
        """A flat dict for tables and JSON: rank-k, mAP, mINP and the query counts."""
        out: dict[str, float | int | str] = {f"rank{k}": self.rank(k) for k in ranks}
        out.update(
            mAP=self.mAP,
            mINP=self.mINP,
            num_valid_queries=self.num_valid_queries,
            num_skipped=self.num_skipped,
            protocol=self.protocol,
        )
        return out


@dataclass(frozen=True)
class SplitResult:
    """Metrics averaged over several random splits (VIPeR, GRID, CUHK01 style).

    ``cmc`` (max_rank,) float64, ``mAP`` and ``mINP`` are means over ``splits``.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    splits: list[RankResult]

    def rank(self, k: int) -> float:
        if k < 1:
            raise UsageError(f"rank must be >= 1, got {k}")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self, ranks: Sequence[int] = (1, 5, 10, 20)) -> dict[str, float | int | str]:
        out: dict[str, float | int | str] = {f"rank{k}": self.rank(k) for k in ranks}
        out.update(mAP=self.mAP, mINP=self.mINP, num_splits=len(self.splits))
        return out


# ----------------------------------------------------------------------------------------------
# input checks shared with the reference implementation


def check_rank_inputs(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray | None,
    g_camids: np.ndarray | None,
    protocol: str,
    arithmetic: str,
    query_gallery_index: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """Validate and convert the inputs; returns (distmat, q_pids, g_pids, q_camids, g_camids, qgi)."""
    if protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if arithmetic not in ("float32", "float64"):
        raise UsageError(f"arithmetic must be 'float32' or 'float64', got {arithmetic!r}")
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise UsageError(f"distmat must be 2-D (num_query, num_gallery), got shape {distmat.shape}")
    if not np.issubdtype(distmat.dtype, np.floating):
        distmat = distmat.astype(np.float64)
    if arithmetic == "float32":
        distmat = np.ascontiguousarray(distmat, dtype=np.float32)
    num_q, num_g = distmat.shape
    if num_q == 0 or num_g == 0:
        raise UsageError(f"distmat is empty: shape {distmat.shape}")
    if np.isnan(distmat).any():
        raise UsageError("distmat contains NaN")
    q_pids = _labels(q_pids, num_q, "q_pids")
    g_pids = _labels(g_pids, num_g, "g_pids")
    if protocol == "no_camera":
        q_camids = np.zeros(num_q, np.int64) if q_camids is None else _labels(q_camids, num_q, "q_camids")
        g_camids = np.zeros(num_g, np.int64) if g_camids is None else _labels(g_camids, num_g, "g_camids")
    else:
        if q_camids is None or g_camids is None:
            raise UsageError(f"protocol {protocol!r} needs camera ids; use protocol='no_camera'")
        q_camids = _labels(q_camids, num_q, "q_camids")
        g_camids = _labels(g_camids, num_g, "g_camids")
    qgi = np.full(num_q, -1, np.int64)
    if query_gallery_index is not None:
        if protocol != "no_camera":
            raise UsageError("query_gallery_index is only used by protocol='no_camera'")
        qgi = _labels(query_gallery_index, num_q, "query_gallery_index")
        inside = qgi >= 0
        if (qgi >= num_g).any() or (qgi < -1).any():
            raise UsageError("query_gallery_index entries must be -1 or a gallery index")
        if (g_pids[qgi[inside]] != q_pids[inside]).any():
            bad = int(np.flatnonzero(inside & (g_pids[np.maximum(qgi, 0)] != q_pids))[0])
            raise UsageError(
                f"query_gallery_index[{bad}] points at a gallery image of another identity"
            )
    return distmat, q_pids, g_pids, q_camids, g_camids, qgi


def _labels(values: np.ndarray, length: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != length:
        raise UsageError(f"{name} must have shape ({length},), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.array_equal(arr, np.round(arr)):
            raise UsageError(f"{name} must hold integers")
    return arr.astype(np.int64)


def removed_gallery(
    protocol: str, q_idx: int, q_pid: int, q_camid: int, g_pids, g_camids, qgi
) -> np.ndarray:
    """Gallery indices removed from query ``q_idx``'s list under ``protocol`` (sorted)."""
    if protocol == "no_camera":
        return qgi[q_idx : q_idx + 1] if qgi[q_idx] >= 0 else np.empty(0, np.int64)
    return np.flatnonzero((g_pids == q_pid) & (g_camids == q_camid))


def cuhk03_cmc_table(num_repeats: int) -> np.ndarray:
    """(num_repeats + 1,) float32: the CMC value after n hits out of ``num_repeats`` draws when the
    per-draw share ``1/num_repeats`` is accumulated in float32, as torchreid's compiled code does."""
    share = np.float32(1) / np.float32(num_repeats)
    table = np.zeros(num_repeats + 1, np.float32)
    for n in range(1, num_repeats + 1):
        table[n] = np.float32(table[n - 1] + share)
    return table


# ----------------------------------------------------------------------------------------------
# fast path


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray | None,
    g_camids: np.ndarray | None,
    max_rank: int = 50,
    *,
    protocol: Protocol = "market",
    arithmetic: Arithmetic = "float32",
    query_gallery_index: np.ndarray | None = None,
    num_repeats: int = 10,
    seed: int = 0,
) -> RankResult:
    """CMC, mAP and mINP of a query-gallery distance matrix.

    Args:
        distmat: (Q, G) distances, smaller is more similar.
        q_pids, g_pids: (Q,), (G,) identity labels.
        q_camids, g_camids: (Q,), (G,) camera ids (may be None for ``protocol="no_camera"``).
        max_rank: length of the CMC curve (cut to G when the gallery is smaller).
        protocol: ``"market"``, ``"cuhk03"`` or ``"no_camera"`` (see the module docstring).
        arithmetic: ``"float32"`` matches torchreid's compiled evaluator, ``"float64"`` its
            Python evaluator.
        query_gallery_index: (Q,) gallery index of each query image, -1 if absent
            (``"no_camera"`` only).
        num_repeats, seed: CUHK03 sampling: number of draws and the RandomState seed.

    Returns:
        :class:`RankResult`.
    """
    distmat, q_pids, g_pids, q_camids, g_camids, qgi = check_rank_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, protocol, arithmetic, query_gallery_index
    )
    num_q, num_g = distmat.shape
    if max_rank < 1:
        raise UsageError(f"max_rank must be >= 1, got {max_rank}")
    if num_g < max_rank:
        logger.info("gallery has only %d samples; CMC cut to rank %d", num_g, num_g)
        max_rank = num_g

    if protocol == "cuhk03":
        positions, n_valid, cmc_rows = _cuhk03_positions(
            distmat, q_pids, g_pids, q_camids, g_camids, max_rank, num_repeats, seed, arithmetic
        )
    else:
        positions, n_valid = _match_positions(
            distmat, q_pids, g_pids, q_camids, g_camids, protocol, qgi
        )
        cmc_rows = None
    return _aggregate(positions, n_valid, max_rank, protocol, arithmetic, cmc_rows)


def _gallery_groups(g_pids: np.ndarray) -> dict[int, np.ndarray]:
    order = np.argsort(g_pids, kind="stable")
    sorted_pids = g_pids[order]
    uniq, starts = np.unique(sorted_pids, return_index=True)
    ends = np.append(starts[1:], len(sorted_pids))
    return {int(p): order[a:b] for p, a, b in zip(uniq, starts, ends)}


def _match_positions(distmat, q_pids, g_pids, q_camids, g_camids, protocol, qgi):
    """Per query: sorted 0-based positions of its true matches in the kept ranked list
    (None when skipped), and the length of that list."""
    groups = _gallery_groups(g_pids)
    num_q, num_g = distmat.shape
    positions: list[np.ndarray | None] = [None] * num_q
    n_valid = np.zeros(num_q, np.int64)
    empty = np.empty(0, np.int64)
    for i in range(num_q):
        same_id = groups.get(int(q_pids[i]), empty)
        if protocol == "no_camera":
            removed = qgi[i : i + 1] if qgi[i] >= 0 else empty
            pos = same_id[same_id != qgi[i]]
        else:
            same_cam = g_camids[same_id] == q_camids[i]
            removed, pos = same_id[same_cam], same_id[~same_cam]
        n_valid[i] = num_g - len(removed)
        if len(pos) == 0:
            continue
        row = distmat[i]
        x = np.sort(row[pos])
        near = row[row <= x[-1]]  # the only entries that can rank before a true match
        near.sort()
        less = np.searchsorted(near, x, "left")
        equal = np.searchsorted(near, x, "right") - less
        pos_less = np.searchsorted(x, x, "left")
        pos_equal = np.searchsorted(x, x, "right") - pos_less
        rem_vals = row[removed]
        rem_less = (rem_vals[None, :] < x[:, None]).sum(1)
        rem_equal = (rem_vals[None, :] == x[:, None]).sum(1)
        if np.any(equal - pos_equal - rem_equal > 0):
            positions[i] = _positions_by_sort(row, g_pids, int(q_pids[i]), removed)
        else:
            positions[i] = less - rem_less - pos_less + np.arange(len(x))
    return positions, n_valid


def _positions_by_sort(row, g_pids, q_pid, removed) -> np.ndarray:
    """Exact positions for a row with ties, ordered by ``np.argsort`` as torchreid orders them."""
    order = np.argsort(row)
    keep = np.ones(len(row), bool)
    keep[removed] = False
    kept = order[keep[order]]
    return np.flatnonzero(g_pids[kept] == q_pid)


def _cuhk03_positions(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, num_repeats, seed, arithmetic):
    rs = np.random.RandomState(seed)
    num_q = distmat.shape[0]
    indices = np.argsort(distmat, axis=1)
    positions: list[np.ndarray | None] = [None] * num_q
    n_valid = np.zeros(num_q, np.int64)
    cmc_rows = np.zeros((num_q, max_rank), np.float32)
    table = cuhk03_cmc_table(num_repeats)
    ranks = np.arange(max_rank)
    for i in range(num_q):
        order = indices[i]
        ordered_pids = g_pids[order]
        keep = (ordered_pids != q_pids[i]) | (g_camids[order] != q_camids[i])
        kept_pids = ordered_pids[keep]
        n_valid[i] = len(kept_pids)
        match = kept_pids == q_pids[i]
        if not match.any():
            continue
        positions[i] = np.flatnonzero(match)
        # identities in order of first appearance, and each one's positions (ascending)
        uniq, first, inverse, counts = np.unique(
            kept_pids, return_index=True, return_inverse=True, return_counts=True
        )
        id_order = np.argsort(first)
        grouped = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        draws = rs.randint(0, np.tile(counts[id_order], num_repeats)).reshape(num_repeats, -1)
        sampled = grouped[starts[id_order][None, :] + draws]  # (repeats, ids) positions
        own = int(np.searchsorted(uniq, q_pids[i]))
        own_col = int(np.flatnonzero(id_order == own)[0])
        rank_of_match = (sampled < sampled[:, own_col : own_col + 1]).sum(1)  # (repeats,)
        hits = (rank_of_match[:, None] <= ranks[None, :]).sum(0)  # (max_rank,)
        if arithmetic == "float32":
            cmc_rows[i] = table[hits]
        else:
            cmc_rows[i] = hits.astype(np.float32) / np.float32(num_repeats)
    return positions, n_valid, cmc_rows


def _aggregate(positions, n_valid, max_rank, protocol, arithmetic, cmc_rows) -> RankResult:
    num_q = len(positions)
    valid = np.array([p is not None for p in positions], bool)
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise UsageError(
            "no query has a valid match in the gallery (every query identity is absent or only "
            "seen by the query's own camera)"
        )
    valid_pos = [p for p in positions if p is not None]
    counts = np.array([len(p) for p in valid_pos], np.int64)
    first = np.full(num_q, -1, np.int64)
    first[valid] = [p[0] for p in valid_pos]
    last = np.array([p[-1] for p in valid_pos], np.int64)

    # CMC
    if cmc_rows is None:
        hits = np.bincount(np.minimum(first[valid], max_rank), minlength=max_rank + 1)[:max_rank]
        cmc = np.cumsum(hits).astype(np.float32) / np.float32(num_valid)
    elif arithmetic == "float32":
        cmc = np.cumsum(cmc_rows, axis=0, dtype=np.float32)[-1] / np.float32(num_valid)
    else:
        cmc = cmc_rows[valid].sum(0) / float(num_valid)
    cmc = cmc.astype(np.float32)

    # AP (per query) and mAP
    ap = np.full(num_q, np.nan)
    if arithmetic == "float32":
        ap_valid = _ap_float32(valid_pos, counts)
        all_ap = np.zeros(num_q, np.float32)
        all_ap[valid] = ap_valid
        mean_ap = float(np.cumsum(all_ap, dtype=np.float32)[-1] / np.float32(num_valid))
    else:
        ap_valid = np.array(
            [_ap_float64(p, int(n)) for p, n in zip(valid_pos, n_valid[valid])], np.float64
        )
        mean_ap = float(np.mean(ap_valid))
    ap[valid] = ap_valid

    inp = np.full(num_q, np.nan)
    inp[valid] = counts / (last + 1.0)
    return RankResult(
        cmc=cmc,
        mAP=mean_ap,
        mINP=float(np.mean(inp[valid])),
        num_valid_queries=num_valid,
        num_skipped=num_q - num_valid,
        protocol=protocol,
        query_ap=ap,
        query_inp=inp,
        first_match=first,
    )


def _ap_float32(valid_pos: list[np.ndarray], counts: np.ndarray) -> np.ndarray:
    """AP accumulated in float32 one true match at a time (each step summed in float64, then
    rounded), then divided in float32, as torchreid's compiled evaluator does."""
    width = int(counts.max())
    terms = np.zeros((len(valid_pos), width), np.float64)
    for r, p in enumerate(valid_pos):
        terms[r, : len(p)] = np.arange(1, len(p) + 1) / (p + 1.0)
    acc = np.zeros(len(valid_pos), np.float32)
    for k in range(width):
        acc = (acc.astype(np.float64) + terms[:, k]).astype(np.float32)
    return acc / counts.astype(np.float32)


def _ap_float64(pos: np.ndarray, n_valid: int) -> float:
    """AP summed over the whole kept list in float64, as torchreid's Python evaluator sums it."""
    precision_at_hits = np.zeros(n_valid, np.float64)
    precision_at_hits[pos] = np.arange(1, len(pos) + 1) / (pos + 1.0)
    return precision_at_hits.sum() / np.int64(len(pos))


# ----------------------------------------------------------------------------------------------
# split-averaged evaluation


@dataclass(frozen=True)
class SplitInputs:
    """One random split's arrays, as :func:`evaluate_rank` takes them (``query_gallery_index``:
    this split's, for ``protocol="no_camera"``)."""

    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray | None
    g_camids: np.ndarray | None
    query_gallery_index: np.ndarray | None = None


def evaluate_splits(
    splits: Sequence[SplitInputs], max_rank: int = 50, **kwargs
) -> SplitResult:
    """Evaluate each split with :func:`evaluate_rank` and average CMC, mAP and mINP.

    This is how VIPeR, GRID and CUHK01 (single-shot, 10 random identity splits) are reported.
    The CMC curves are cut to the shortest split before averaging. ``kwargs`` go to
    :func:`evaluate_rank`; each split's own ``query_gallery_index`` goes with it.
    """
    if not splits:
        raise UsageError("evaluate_splits needs at least one split")
    if "query_gallery_index" in kwargs:
        raise UsageError("evaluate_splits: give each split its own SplitInputs.query_gallery_index")
    results = [
        evaluate_rank(s.distmat, s.q_pids, s.g_pids, s.q_camids, s.g_camids, max_rank,
                      query_gallery_index=s.query_gallery_index, **kwargs)
        for s in splits
    ]
    length = min(len(r.cmc) for r in results)
    cmc = np.mean([r.cmc[:length].astype(np.float64) for r in results], axis=0)
    return SplitResult(
        cmc=cmc,
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        splits=results,
    )
