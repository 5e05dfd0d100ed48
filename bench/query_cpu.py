"""CPU a query costs besides embedding it: ranking, grouping, reading rows, snippets.

Embedding is the model's (and ``bench/int8.py``'s) business; everything else a query does is
ours, runs in Python under the GIL, and decides how many queries a server process can answer.
This embeds SciFact's queries once, then times ``Index.search`` with those vectors fed in, for
each mode: the best of three passes, CPU time per query.

    python bench/query_cpu.py [--data ../shared/data/scifact] [--work bench/.work/int8] [--queries 400]

It reuses (or builds once) the SciFact index of ``bench/int8.py``. The data is for evaluation
only: it is written under bench/.work/, never committed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import ensure_index, read_queries  # noqa: E402

from search import Index  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "int8")
    parser.add_argument("--queries", type=int, default=400)
    args = parser.parse_args()

    _, index_dir = ensure_index(args.data, args.work)
    queries = read_queries(args.data)[: args.queries]
    index = Index.open(index_dir)
    vectors = dict(zip(queries, index.embed_queries(queries), strict=True))
    index.embed_queries = lambda texts: np.stack([vectors[t] for t in texts])  # type: ignore[method-assign]
    print(f"SciFact, {len(index):,} chunks, {len(queries)} queries, k=10, embedding excluded\n")
    print(f"{'mode':<8} {'CPU ms/query':>12}")
    for mode in ("hybrid", "dense", "keyword"):
        for query in queries[:50]:  # caches warm, as in a server that has run a while
            index.search(query, k=10, mode=mode)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            for query in queries:
                index.search(query, k=10, mode=mode)
            best = min(best, (time.process_time() - started) / len(queries) * 1000)
        print(f"{mode:<8} {best:>12.2f}")


if __name__ == "__main__":
    main()
