"""The int8 query model (``semindex serve --int8``): its cost per query and its effect on quality.

Builds (once, then reuses) an index of SciFact's corpus, then embeds SciFact's 300 test
queries with the index's fp32 ONNX query model and with its int8 copy, one query at a time on
one thread, and prints for each: CPU ms per query, the cosine of its vectors to fp32's, and
nDCG@10 in dense and hybrid mode (documents ranked by their best chunk, as `semindex eval`).

    python bench/int8.py [--data ../shared/data/scifact] [--work bench/.work/int8]

Issue 6's rule: a faster path whose nDCG@10 drops by more than 0.005 is not a default. The
data is for evaluation only: it is written under bench/.work/, never committed.
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

from load import ensure_index  # noqa: E402

from search import Index  # noqa: E402
from search.evaluate import load_judged, ndcg_at  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "int8")
    args = parser.parse_args()

    _, index_dir = ensure_index(args.data, args.work)
    judged = load_judged(args.data, "test")
    texts = [text for _, text in judged.queries]
    rows, reference = [], None
    for label, backend in (("fp32 (default)", "onnx"), ("int8 (--int8)", "onnx-int8")):
        index = Index.open(index_dir, backend=backend, threads=1)
        index.embed_queries(texts[:5])  # loaded (and for int8, quantised) before timing
        started = time.process_time()
        vectors = np.concatenate([index.embed_queries([text]) for text in texts])
        cpu_ms = (time.process_time() - started) / len(texts) * 1000
        reference = vectors if reference is None else reference
        cosine = np.sum(vectors * reference, axis=1)
        quality = {}
        for mode in ("dense", "hybrid"):
            answers = index.search_many(texts, k=10, mode=mode)
            quality[mode] = sum(
                ndcg_at([Path(hit.path).stem for hit in hits], judged.qrels.get(qid, {}))
                for (qid, _), hits in zip(judged.queries, answers, strict=True)
            ) / len(texts)
        rows.append((label, cpu_ms, float(cosine.mean()), float(cosine.min()), quality))

    print(f"SciFact test, {len(texts)} queries, {len(index):,} chunks; one query at a time, one thread\n")
    print(f"{'query model':<16} {'CPU ms/query':>12} {'cos mean':>9} {'cos min':>8} "
          f"{'nDCG@10 dense':>14} {'nDCG@10 hybrid':>15}")  # fmt: skip
    for label, cpu_ms, mean, least, quality in rows:
        print(f"{label:<16} {cpu_ms:>12.2f} {mean:>9.4f} {least:>8.4f} "
              f"{quality['dense']:>14.4f} {quality['hybrid']:>15.4f}")  # fmt: skip
    base, fast = rows
    dense, hybrid = (fast[4][mode] - base[4][mode] for mode in ("dense", "hybrid"))
    print(f"\nint8 / fp32 CPU per query: {fast[1] / base[1]:.2f}; nDCG@10 change: "
          f"dense {dense:+.4f}, hybrid {hybrid:+.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
