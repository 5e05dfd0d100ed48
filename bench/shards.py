"""Per-shard search cost and memory for the index types a 100M-chunk plan can use (docs/scale.md).

One shard of ``--rows`` synthetic vectors (mixtures of two real SciFact chunk embeddings plus a
little noise, as in ``bench/warm.py``: uniform random vectors have no neighbourhoods) is held
in FAISS in each layout, side by side in one run, and searched with real SciFact query
embeddings, one query at a time (k=10, 1 thread and all threads):

- ``flat``: exact inner product over float32 vectors (1,536 bytes each);
- ``ivf-sq8``: IVF buckets, vectors scalar-quantised to 8 bits (384 bytes each);
- ``ivf-pq48``: IVF buckets, vectors product-quantised to 48 bytes, the top k*8 re-scored
  exactly from the float32 vectors (what ``--index-type ivfpq`` does).

For each it prints build seconds, bytes per vector in memory, p50/p99 ms per query and
recall@10 against flat. IVF layouts use about 4*sqrt(rows) buckets, trained on a sample of
39 vectors per bucket, searched with ``--nprobe`` buckets.

    python bench/shards.py [--rows 1000000] [--queries 200] [--nprobe 32]

It needs the SciFact index of ``bench/int8.py`` (``bench/.work/int8/index``; built once if
missing). The data is for evaluation only: it stays under bench/.work/, never committed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import ensure_index, read_queries  # noqa: E402

RERANK = 8


def mixtures(base: np.ndarray, rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((rows, base.shape[1]), dtype=np.float32)
    for start in range(0, rows, 100_000):
        size = min(100_000, rows - start)
        a = base[rng.integers(0, len(base), size)]
        b = base[rng.integers(0, len(base), size)]
        block = a + rng.uniform(0.2, 0.8, (size, 1)).astype(np.float32) * b
        block += 0.02 * rng.standard_normal(block.shape).astype(np.float32)
        out[start : start + size] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(search, queries: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:  # type: ignore[no-untyped-def]
    found, times = [], []
    for query in queries:
        started = time.perf_counter()
        found.append(search(query[None, :]))
        times.append(time.perf_counter() - started)
    return found, np.array(times) * 1000


def main() -> None:
    import faiss

    from search import Index

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "int8")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, default=32)
    args = parser.parse_args()

    _, index_dir = ensure_index(args.data, args.work)
    index = Index.open(index_dir)
    base = np.concatenate([p.vectors.reconstruct_n(0, p.vectors.ntotal) for p in index._parts])
    queries = index.embed_queries(read_queries(args.data)[: args.queries])
    vectors = mixtures(base, args.rows, seed=args.rows)
    dimension = vectors.shape[1]
    lists = 2 ** round(np.log2(4 * np.sqrt(args.rows)))
    sample = vectors[np.random.default_rng(1).choice(args.rows, min(args.rows, 39 * lists), replace=False)]
    print(f"one shard of {args.rows:,} vectors of {dimension} dims; {len(queries)} real queries, k=10; "
          f"IVF: {lists} lists, nprobe {args.nprobe}; {os.cpu_count()} cores\n")  # fmt: skip

    layouts = {}
    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dimension)
    flat.add(vectors)
    layouts["flat"] = (flat, time.perf_counter() - started, 4 * dimension)
    for name, factory, code_bytes in (
        ("ivf-sq8", f"IVF{lists},SQ8", dimension),
        ("ivf-pq48", f"IVF{lists},PQ48", 48),
    ):
        started = time.perf_counter()
        built = faiss.index_factory(dimension, factory, faiss.METRIC_INNER_PRODUCT)
        built.train(sample)
        built.add(vectors)
        built.nprobe = args.nprobe
        layouts[name] = (built, time.perf_counter() - started, code_bytes + 8)  # + the 8-byte id

    def search_with(name: str):  # type: ignore[no-untyped-def]
        built = layouts[name][0]
        if name != "ivf-pq48":
            return lambda q: built.search(q, 10)[1][0]

        def rescored(q: np.ndarray) -> np.ndarray:
            ids = built.search(q, 10 * RERANK)[1][0]
            ids = ids[ids >= 0]
            exact = vectors[ids] @ q[0]
            return ids[np.argsort(-exact)[:10]]

        return rescored

    print(f"{'layout':<10} {'threads':>7} {'build s':>8} {'bytes/vector':>12} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'recall@10':>9}")  # fmt: skip
    reference = None
    for threads in (1, os.cpu_count() or 1):
        faiss.omp_set_num_threads(threads)
        for name, (_, seconds, size) in layouts.items():
            found, times = timed(search_with(name), queries)
            if name == "flat" and reference is None:
                reference = found
            assert reference is not None
            recall = np.mean(
                [len(set(a.tolist()) & set(e.tolist())) / 10 for a, e in zip(found, reference, strict=True)]
            )
            print(f"{name:<10} {threads:>7} {seconds:>8.1f} {size:>12,} {np.percentile(times, 50):>8.2f} "
                  f"{np.percentile(times, 99):>8.2f} {recall:>9.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
