"""The Ray engine against the local one, side by side in one run (issue 8).

1. **Build**: SciFact's 5,183 abstracts (one text file each, as ``bench/scifact.py`` writes
   them) indexed twice from scratch, each by ``semindex index --json`` in a fresh process:
   ``--engine local`` and ``--engine ray`` (a local Ray instance of every core). Prints each
   build's chunks/s (chunks over the build's seconds after loading the model, Ray's start-up
   included) and wall seconds, and the ratio Ray/local.
2. **Same index**: the two indexes' chunk rows compared column by column (after sorting by
   path and ordinal: parts differ), their vectors' largest difference, and nDCG@10 of the
   SciFact test queries in dense and hybrid mode from each.
3. **Sharded search**: 1,000,000 synthetic vectors (mixtures of two real SciFact embeddings
   plus noise, as ``bench/warm.py`` builds them) in 4 flat parts of 250,000, searched one
   query at a time (k=10, real SciFact query embeddings) three ways in one process: one flat
   FAISS index holding all 1M vectors, the local multi-part search (``search/shards.py``: 4
   parts, exact merge), and 4 Ray actors holding a part each (``search/ray_engine.py``).
   Prints p50/p99 ms and whether each returned the one flat index's top 10.

    python bench/ray_build.py [--data ../shared/data/scifact] [--queries 200] [--skip-shards]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scifact import SEMINDEX, mode_scores, run, write_corpus  # noqa: E402
from shards import timed  # noqa: E402


def build(corpus: Path, index: Path, engine: str) -> tuple[dict, float]:
    if index.exists():
        shutil.rmtree(index)
    command = [*SEMINDEX, "index", str(corpus), "--index", str(index), "--engine", engine, "--json", "-q"]
    started = time.perf_counter()
    report = json.loads(run(command).stdout)
    return report, time.perf_counter() - started


def sorted_rows(index: Path) -> tuple[list[dict], np.ndarray]:
    import pyarrow.parquet as pq

    from indexer.manifest import IndexManifest
    from indexer.store import all_vectors, read_vectors

    manifest = IndexManifest.load(index)
    rows, vectors = [], []
    for part in manifest.part_refs:
        rows += pq.read_table(index / part.chunks_name).to_pylist()
        vectors.append(all_vectors(read_vectors(index, manifest, part)))
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["path"], rows[i]["chunk"]))
    return [rows[i] for i in order], np.concatenate(vectors)[order]


def compare_builds(args: argparse.Namespace) -> None:
    from search.evaluate import load_judged

    work = args.work
    corpus = work / "corpus"
    if not (corpus.is_dir() and any(corpus.iterdir())):
        write_corpus(args.data / "corpus.jsonl", corpus)
    results = {}
    for engine in ("local", "ray"):
        report, wall = build(corpus, work / f"index-{engine}", engine)
        building = report["seconds"] - report["model_seconds"]
        results[engine] = (report, wall, report["chunks"] / building)
        print(
            f"{engine}: {report['chunks']} chunks, {report['seconds']:.1f} s build, {wall:.1f} s wall",
            flush=True,
        )
    print("\n| build of SciFact (5,183 files), same run | chunks | chunks/s | build s | wall s |")
    print("|---|---|---|---|---|")
    for engine, (report, wall, speed) in results.items():
        print(
            f"| --engine {engine} | {report['chunks']} | {speed:.1f} | {report['seconds']:.1f} | {wall:.1f} |"
        )
    ratio = results["ray"][2] / results["local"][2]
    print(
        f"| ratio ray/local | | {ratio:.3f} | | "
        f"{results['local'][1] / results['ray'][1]:.3f} (local/ray wall) |"
    )

    local_rows, local_vectors = sorted_rows(work / "index-local")
    ray_rows, ray_vectors = sorted_rows(work / "index-ray")
    same = local_rows == ray_rows
    diff = float(np.abs(local_vectors - ray_vectors).max()) if same else float("nan")
    print(f"\nchunk rows identical (every column): {same}; largest vector difference: {diff:.2e}")
    judged = load_judged(args.data, "test")
    print("\n| SciFact test, 300 queries | mode | nDCG@10 local | nDCG@10 ray |")
    print("|---|---|---|---|")
    for mode in ("dense", "hybrid"):
        local, _ = mode_scores(work / "index-local", judged, "test", work, mode)
        ray, _ = mode_scores(work / "index-ray", judged, "test", work, mode)
        print(f"| | {mode} | {local['ndcg@10']:.4f} | {ray['ndcg@10']:.4f} |", flush=True)


def compare_shards(args: argparse.Namespace) -> None:
    import faiss
    from warm import build as build_synthetic
    from warm import excerpts

    from indexer.manifest import IndexManifest
    from search import Index
    from search.ray_engine import RayShards
    from search.shards import dense_hits

    base_index = args.work / "index-local"
    base = np.concatenate(
        [p.vectors.reconstruct_n(0, p.vectors.ntotal) for p in Index.open(base_index)._parts]
    )
    texts = excerpts(args.data)
    target = build_synthetic(args.work / "n1000000-4parts", 1_000_000, base, texts, "flat", 250_000)
    index = Index.open(target)
    queries_file = args.data / "queries.jsonl"
    texts = [json.loads(line)["text"] for line in queries_file.open(encoding="utf-8")][: args.queries]
    queries = index.embed_queries(texts)
    parts = index._parts
    assert len(parts) == 4, f"expected 4 parts, found {len(parts)}"
    offsets = np.cumsum([0] + [p.vectors.ntotal for p in parts])
    one = faiss.IndexFlatIP(base.shape[1])
    for part in parts:
        one.add(part.vectors.reconstruct_n(0, part.vectors.ntotal))

    def flat_search(query: np.ndarray) -> list[tuple[int, int]]:
        _, ids = one.search(query, 10)
        numbers = np.searchsorted(offsets, ids[0], side="right") - 1
        return [(int(n), int(i - offsets[n])) for n, i in zip(numbers, ids[0], strict=True)]

    def local_search(query: np.ndarray) -> list[tuple[int, int]]:
        return [(p, r) for _, p, r in dense_hits(parts, query, 10)[0]]

    faiss.omp_set_num_threads(1)  # one query: one thread is faster (docs/scale.md)
    truth, flat_ms = timed(flat_search, queries)
    local, local_ms = timed(local_search, queries)
    manifest = IndexManifest.load(target)
    shards = RayShards(target, manifest, shards=4)

    def ray_search(query: np.ndarray) -> list[tuple[int, int]]:
        return [(p, r) for _, p, r in shards.dense_hits(query, 10, None)[0]]

    ray_search(queries[:1])  # warm-up
    remote, ray_ms = timed(ray_search, queries)
    shards.close()
    print(
        f"\n| 1M synthetic vectors, {len(queries)} SciFact queries, k=10, one at a time "
        "| p50 ms | p99 ms | same top 10 as one flat index |"
    )
    print("|---|---|---|---|")
    for label, ms, got in (
        ("one flat index (FAISS, 1M)", flat_ms, truth),
        ("4 parts, local search + exact merge", local_ms, local),
        ("4 parts in 4 Ray actors, fan-out + merge", ray_ms, remote),
    ):
        same = sum(g == t for g, t in zip(got, truth, strict=True))
        print(
            f"| {label} | {np.percentile(ms, 50):.1f} | {np.percentile(ms, 99):.1f} | {same}/{len(truth)} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "ray")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-builds", action="store_true", help="reuse the two SciFact indexes")
    parser.add_argument("--skip-shards", action="store_true")
    args = parser.parse_args()
    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"Error: no SciFact data at {args.data}; pass --data DIR (a BEIR folder with corpus.jsonl)")
    args.work.mkdir(parents=True, exist_ok=True)
    if not args.skip_builds:
        compare_builds(args)
    if not args.skip_shards:
        compare_shards(args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
