"""Plain NumPy reference for :func:`omnireid.evaluation.rank.evaluate_rank`.

One query at a time, with a full ``np.argsort`` of its row: slow and obvious. The fast path must
give the same numbers; tests hold them equal. The arithmetic follows the same two conventions
(``"float32"``: running sums kept in float32; ``"float64"``: AP summed over the whole kept list).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from omnireid.errors import UsageError
from omnireid.evaluation.rank import (
    RankResult,
    check_rank_inputs,
    cuhk03_cmc_table,
    removed_gallery,
)


def evaluate_rank_reference(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray | None,
    g_camids: np.ndarray | None,
    max_rank: int = 50,
    *,
    protocol: str = "market",
    arithmetic: str = "float32",
    query_gallery_index: np.ndarray | None = None,
    num_repeats: int = 10,
    seed: int = 0,
) -> RankResult:
    """Same contract as :func:`omnireid.evaluation.evaluate_rank`, computed plainly."""
    distmat, q_pids, g_pids, q_camids, g_camids, qgi = check_rank_inputs(
        distmat, q_pids, g_pids, q_camids, g_camids, protocol, arithmetic, query_gallery_index
    )
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    f32 = arithmetic == "float32"
    rs = np.random.RandomState(seed)
    table = cuhk03_cmc_table(num_repeats)

    cmc_sum = np.zeros(max_rank, np.float32 if f32 else np.float64)
    cmc_rows = []
    ap_list: list[float] = []
    ap_all = np.full(num_q, np.nan)
    inp_all = np.full(num_q, np.nan)
    first_all = np.full(num_q, -1, np.int64)
    map_sum32 = np.float32(0)
    for i in range(num_q):
        order = np.argsort(distmat[i])
        removed = set(
            removed_gallery(protocol, i, q_pids[i], q_camids[i], g_pids, g_camids, qgi).tolist()
        )
        kept = [int(g) for g in order if int(g) not in removed]
        match = [g_pids[g] == q_pids[i] for g in kept]
        if not any(match):
            if f32:
                map_sum32 = np.float32(map_sum32 + np.float32(0))
            continue

        # CMC of this query
        first = match.index(True)
        first_all[i] = first
        if protocol == "cuhk03":
            cmc = _cuhk03_query_cmc(kept, match, g_pids, rs, num_repeats, max_rank, table, f32)
        else:
            cmc = np.array([1.0 if first <= r else 0.0 for r in range(max_rank)], np.float32)
        cmc_rows.append(cmc)

        # AP and INP
        hits = [k for k, m in enumerate(match) if m]
        if f32:
            acc = np.float32(0)
            found = 0
            for k in hits:
                found += 1
                acc = np.float32(float(acc) + found / (k + 1.0))
            ap = np.float32(acc / np.float32(len(hits)))
            map_sum32 = np.float32(map_sum32 + ap)
        else:
            precision = np.zeros(len(kept))
            for found, k in enumerate(hits, start=1):
                precision[k] = found / (k + 1.0)
            ap = precision.sum() / np.int64(len(hits))
        ap_list.append(float(ap))
        ap_all[i] = float(ap)
        inp_all[i] = len(hits) / (hits[-1] + 1.0)

    num_valid = len(cmc_rows)
    if num_valid == 0:
        raise UsageError("no query has a valid match in the gallery")
    if f32:
        for row in cmc_rows:  # queries in order, float32 running sum
            cmc_sum = (cmc_sum + row).astype(np.float32)
        cmc = cmc_sum / np.float32(num_valid)
        mean_ap = float(map_sum32 / np.float32(num_valid))
    else:
        cmc = np.asarray(cmc_rows).astype(np.float32).sum(0) / float(num_valid)
        mean_ap = float(np.mean(ap_list))
    return RankResult(
        cmc=np.asarray(cmc, np.float32),
        mAP=mean_ap,
        mINP=float(np.nanmean(inp_all)),
        num_valid_queries=num_valid,
        num_skipped=num_q - num_valid,
        protocol=protocol,
        query_ap=ap_all,
        query_inp=inp_all,
        first_match=first_all,
    )


def _cuhk03_query_cmc(kept, match, g_pids, rs, num_repeats, max_rank, table, f32) -> np.ndarray:
    """Single-gallery-shot CMC of one query: one random image per identity, ``num_repeats`` times."""
    by_id: dict[int, list[int]] = defaultdict(list)  # identities in order of first appearance
    for k, g in enumerate(kept):
        by_id[int(g_pids[g])].append(k)
    hits = np.zeros(max_rank, np.int64)
    for _ in range(num_repeats):
        chosen = sorted(int(rs.choice(positions)) for positions in by_id.values())
        sampled_match = [match[k] for k in chosen]
        rank = sampled_match.index(True)
        for r in range(max_rank):
            if rank <= r:
                hits[r] += 1
    if f32:
        return table[hits]
    return hits.astype(np.float32) / np.float32(num_repeats)
