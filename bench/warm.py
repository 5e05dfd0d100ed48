"""Warm queries at scale: latency, recall and memory of an open index of 100k and 1M chunks.

Each index is built (once, then reused) by the real build, with each ``--index-type`` asked
for (``--types``, default ``hnsw,ivf``), from a record file whose records carry real text
(SciFact abstracts cut to about 500 characters, in turn, each with its own number so that no
two are the same: a hit's row costs what a real one does), except that the vectors are
synthetic: mixtures of two real SciFact embeddings plus a little noise, so that they lie where
real embeddings lie (uniform random vectors have no neighbourhoods and make every ANN look
bad). Embedding a million chunks for real would take days on 2 cores.

The queries are real: SciFact's query texts, embedded by the index's ONNX query model inside
``Index.search`` (so the latency includes embedding). In a fresh process per size, side by
side on the same queries:

- ``hnsw`` / ``ivf`` / ...: the index as built (the search effort its recall check chose);
- ``exact``: the same index searched exhaustively (every part's flat vectors);

printing p50/p99 latency per query (dense mode, k=10), recall@10 against exact (and the
recall the build's own check measured on its synthetic queries), the
process's memory after opening, the index's bytes on disk per chunk, and where an ANN query's
time goes (embedding, vector search, reading rows, snippets).

    python bench/warm.py [--sizes 100000,1000000] [--types hnsw,ivf] [--queries 300] [--threads N]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEASURE = r"""
import json, sys, time, resource
import numpy as np
sys.path.insert(0, sys.argv[4])
from indexer.threads import set_threads
if sys.argv[3] != "0":
    set_threads(int(sys.argv[3]))
from search import Index

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

target, queries = sys.argv[1], json.load(open(sys.argv[2]))
before = rss_mb()
started = time.perf_counter()
index = Index.open(target)
index.search("warm up the query model", k=10, mode="dense")
opened = time.perf_counter() - started
after_open = rss_mb()
out = {"open_s": opened, "rss_before_mb": before, "rss_open_mb": after_open}

# Where a query's time goes (the ANN run): each stage's mean milliseconds a query.
import collections
import search.index as engine
from search import Index as _Index
stages = collections.defaultdict(float)
def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            stages[label] += time.perf_counter() - started
    setattr(owner, name, wrapper)
timed(_Index, "embed_queries", "embed")
timed(_Index, "_ranked", "search")
timed(engine, "fetch_rows", "rows")
timed(engine, "make_snippet", "snippets")

def run(label):
    stages.clear()
    times, hits = [], []
    for q in queries:
        t = time.perf_counter()
        found = index.search(q, k=10, mode="dense", per_doc=None)
        times.append(time.perf_counter() - t)
        hits.append([(h.path, h.record, h.chunk) for h in found])
    times = np.array(times) * 1000
    out[label] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
                  "mean_ms": float(times.mean()),
                  "stages_ms": {k: 1000 * v / len(queries) for k, v in stages.items()}}
    return hits

approx = run("ann")
saved = [p.ann for p in index._parts]
for p in index._parts:
    p.ann = None
exact = run("exact")
for p, a in zip(index._parts, saved):
    p.ann = a
out["recall_at_10"] = float(np.mean([len(set(a) & set(e)) / max(1, len(e)) for a, e in zip(approx, exact)]))
out["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def base_vectors(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Real embeddings to mix: the SciFact bench index's vectors, else 2,000 abstracts embedded."""
    import numpy as np

    from indexer.embedding import load_embedder
    from indexer.manifest import IndexManifest
    from indexer.store import all_vectors, read_vectors

    if (args.base_index / "manifest.json").is_file():
        manifest = IndexManifest.load(args.base_index)
        return np.concatenate(
            [all_vectors(read_vectors(args.base_index, manifest, p)) for p in manifest.part_refs]
        )
    lines = (args.data / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:2000]
    texts = [json.loads(line)["text"] for line in lines]
    return load_embedder().embed_documents(texts)


def excerpts(data: Path) -> list[str]:
    """SciFact abstracts cut at a word near 500 characters: one chunk each."""
    out = []
    for line in (data / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        text = " ".join(json.loads(line)["text"].split())
        out.append(text[:500].rsplit(" ", 1)[0] if len(text) > 500 else text)
    return [t for t in out if t]


def build(
    folder: Path, size: int, base, texts: list[str], index_type: str = "hnsw", part_rows: int | None = None
) -> Path:  # type: ignore[no-untyped-def]
    """An index of ``size`` synthetic chunks in ``folder`` (built once, then reused)."""
    import numpy as np

    from indexer.build import build_index
    from indexer.config import BuildConfig
    from indexer.embedding import SentenceTransformerEmbedder, load_embedder
    from indexer.manifest import IndexManifest

    target = folder / ".semindex"
    if (target / "manifest.json").is_file() and IndexManifest.load(target).counts["chunks"] == size:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "items.jsonl", "w", encoding="utf-8") as handle:
        for number in range(size):
            text = f"item {number}: {texts[number % len(texts)]}"
            handle.write(json.dumps({"_id": str(number), "text": text}) + "\n")
    real = load_embedder()
    rng = np.random.default_rng(size)

    class Mixtures(SentenceTransformerEmbedder):
        def __init__(self) -> None:
            self.__dict__.update(real.__dict__)

        def embed_documents(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
            a = base[rng.integers(0, len(base), len(texts))]
            b = base[rng.integers(0, len(base), len(texts))]
            out = a + rng.uniform(0.2, 0.8, (len(texts), 1)).astype(np.float32) * b
            out += 0.02 * rng.standard_normal(out.shape).astype(np.float32)
            return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    started = time.perf_counter()
    config = BuildConfig(records=True, index_type=index_type, embed_batch_chunks=8192)
    if part_rows is not None:
        config = replace(config, part_rows=part_rows)
    build_index(folder, embedder=Mixtures(), config=config, rebuild=True)
    print(f"built {size:,} chunks in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--types", default="hnsw,ivf", help="index types to build and measure")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, default=0, help="cap threads in the measuring process (0: none)"
    )
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "warm")
    parser.add_argument("--base-index", type=Path, default=ROOT / "bench" / ".work" / "scifact" / "index")
    args = parser.parse_args()
    base = base_vectors(args)
    queries = [json.loads(line)["text"] for line in (args.data / "queries.jsonl").open()][: args.queries]
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "queries.json").write_text(json.dumps(queries))
    rows = []
    texts = excerpts(args.data)
    runs = [(int(s), t) for s in args.sizes.split(",") for t in args.types.split(",")]
    for size, kind in runs:
        target = build(args.work / f"n{size}-{kind}", size, base, texts, kind)
        manifest = json.loads((target / "manifest.json").read_text())
        disk = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        onnx = int((manifest.get("query_model") or {}).get("bytes", 0))
        command = [sys.executable, "-c", MEASURE, str(target), str(args.work / "queries.json")]
        done = subprocess.run([*command, str(args.threads), str(ROOT)], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(done.stderr[-2000:])
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append((size, manifest, disk, onnx, result))
        print(json.dumps({"size": size, "type": kind, **result, "faiss": manifest["faiss"]}), flush=True)
    print(f"\n{len(queries)} SciFact queries, dense mode, k=10, latency includes embedding the query (ONNX)")
    header = f"{'chunks':>9} {'parts':>5} {'path':>6} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9}"
    print(f"{header} {'check':>6} {'RSS open MB':>11} {'disk B/chunk':>12} {'effort':>13}")
    for size, manifest, disk, onnx, result in rows:
        kind = manifest["faiss"].get("type", "flat")
        for path in ("exact", "ann"):
            recall = "1 (ref)" if path == "exact" else f"{result['recall_at_10']:.3f}"
            params = manifest["faiss"].get("params", {})
            effort = " ".join(f"{k} {params[k]}" for k in ("efSearch", "nprobe") if k in params)
            effort = effort if path == "ann" else ""
            label = kind if path == "ann" else "exact"
            check = f"{manifest['faiss'].get('recall_at_10', 1):.3f}" if path == "ann" else ""
            print(
                f"{size:>9,} {manifest['counts']['parts']:>5} {label:>6} {result[path]['p50_ms']:>7.2f} "
                f"{result[path]['p99_ms']:>7.2f} {recall:>9} {check:>6} {result['rss_open_mb']:>11.0f} "
                f"{(disk - onnx) / size:>12.0f} {effort:>13}"
            )
    print("(disk per chunk leaves out the ONNX query model, about 91 MB per index whatever its size)")
    print("\nwhere an ANN query's time goes, mean ms: embed the query, search the vectors, read the")
    print("hits' rows (Parquet), make snippets; the rest is ranking, grouping and building results")
    for size, manifest, _, _, result in rows:
        stages = result["ann"]["stages_ms"]
        rest = result["ann"]["mean_ms"] - sum(stages.values())
        shown = "  ".join(f"{k} {v:.2f}" for k, v in stages.items())
        print(f"{size:>9,} {manifest['faiss'].get('type', 'flat'):>6}  {shown}  rest {rest:.2f}")


if __name__ == "__main__":
    main()
