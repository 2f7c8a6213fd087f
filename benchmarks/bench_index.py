"""Gallery search at scale: exact (chunked matrix product) vs FAISS IVF on synthetic embeddings.

The gallery imitates re-ID embeddings: unit vectors in 512-d drawn around identity centres
(~20 images per identity), and identity centres themselves grouped around a few hundred
"appearance" centres (clothing colours, viewpoints), so neighbourhoods are uneven as in real
data. Queries are fresh draws of gallery identities. Ground truth is the exact top-10.

Reports per-query latency (queries one at a time, and amortised over a batch), recall@10 against
the exact result, and build times, for a sweep of IVF ``nprobe``.

    python benchmarks/bench_index.py                 # 1,000,000 x 512 (about 2 GB per copy)
    python benchmarks/bench_index.py --n 100000      # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def synthetic_gallery(n: int, dim: int, n_queries: int, seed: int = 0,
                      per_id: int = 20, groups: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // per_id)
    group_centres = rng.standard_normal((groups, dim), dtype=np.float32)
    id_centres = group_centres[rng.integers(0, groups, n_ids)]
    id_centres += 0.8 * rng.standard_normal((n_ids, dim), dtype=np.float32)
    id_centres /= np.linalg.norm(id_centres, axis=1, keepdims=True)
    noise = 0.045  # per-dimension: images of one identity have cosine ~0.5 to each other

    def draw(count: int, ids: np.ndarray) -> np.ndarray:
        out = np.empty((count, dim), np.float32)
        for s in range(0, count, 100_000):
            e = min(count, s + 100_000)
            block = id_centres[ids[s:e]] + noise * rng.standard_normal((e - s, dim),
                                                                       dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            out[s:e] = block
        return out

    gallery = draw(n, rng.integers(0, n_ids, n))
    queries = draw(n_queries, rng.integers(0, n_ids, n_queries))
    return gallery, queries


def per_query_latency(index, queries: np.ndarray, k: int, single: int) -> tuple[float, float]:
    """(ms per query one at a time, ms per query in one batch)."""
    t = time.perf_counter()
    for q in queries[:single]:
        index.search(q[None], k)
    one = (time.perf_counter() - t) / single * 1000
    t = time.perf_counter()
    index.search(queries, k)
    batched = (time.perf_counter() - t) / len(queries) * 1000
    return one, batched


def main() -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from omnireid.inference.index import ExactIndex, FaissIndex, recall_at_k

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--single", type=int, default=20, help="queries timed one at a time")
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--nprobe", default="4,8,16,32,64")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json")
    args = p.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    k = 10
    t = time.perf_counter()
    gallery, queries = synthetic_gallery(args.n, args.dim, args.queries)
    print(f"gallery {gallery.shape} float32 ({gallery.nbytes / 2**30:.2f} GiB), "
          f"{len(queries)} queries, made in {time.perf_counter() - t:.1f} s; "
          f"threads {args.threads}, {platform.processor() or platform.machine()}, "
          f"faiss {faiss.__version__}, numpy {np.__version__}")
    rows = []
    exact = ExactIndex(args.dim, "ip")
    exact.add(gallery)
    t = time.perf_counter()
    truth = exact.search(queries, k).indices
    exact_batched = (time.perf_counter() - t) / len(queries) * 1000
    one, _ = per_query_latency(exact, queries, k, args.single)
    rows.append({"index": "exact (numpy, chunked)", "ms_per_query_single": one,
                 "ms_per_query_batched": exact_batched, "recall@10": 1.0, "build_s": 0.0})
    sims = queries @ gallery[truth[:, 0]].T
    print(f"mean cosine of a query to its nearest gallery vector {np.diag(sims).mean():.3f}")

    flat = FaissIndex(args.dim, "flat", "ip")
    t = time.perf_counter()
    flat.add(gallery)
    build = time.perf_counter() - t
    one, batched = per_query_latency(flat, queries, k, args.single)
    rows.append({"index": "faiss flat", "ms_per_query_single": one,
                 "ms_per_query_batched": batched,
                 "recall@10": recall_at_k(flat.search(queries, k).indices, truth), "build_s": build})

    ivf = FaissIndex(args.dim, "ivf", "ip", nlist=args.nlist)
    t = time.perf_counter()
    ivf.train(gallery)
    train = time.perf_counter() - t
    t = time.perf_counter()
    ivf.add(gallery)
    build = train + time.perf_counter() - t
    print(f"IVF{args.nlist}: trained in {train:.1f} s, built in {build:.1f} s")
    for nprobe in [int(v) for v in args.nprobe.split(",")]:
        ivf.set_search_params(nprobe=nprobe)
        one, batched = per_query_latency(ivf, queries, k, args.single)
        rec = recall_at_k(ivf.search(queries, k).indices, truth)
        rows.append({"index": f"faiss IVF{args.nlist} nprobe={nprobe}", "ms_per_query_single": one,
                     "ms_per_query_batched": batched, "recall@10": rec, "build_s": build})

    print(f"\n{'index':28s} {'ms/query (1 at a time)':>23s} {'ms/query (batch)':>17s} "
          f"{'recall@10':>9s} {'build s':>8s}")
    for r in rows:
        print(f"{r['index']:28s} {r['ms_per_query_single']:23.2f} {r['ms_per_query_batched']:17.3f} "
              f"{r['recall@10']:9.3f} {r['build_s']:8.1f}")
    ok = [r for r in rows if r["ms_per_query_single"] <= 5 and r["recall@10"] >= 0.95]
    print("\ngoal (<= 5 ms per query, recall@10 >= 0.95): "
          + (f"met by {', '.join(r['index'] for r in ok)}" if ok else "NOT met"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": args.n, "dim": args.dim, "threads": args.threads, "rows": rows}, fh,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
