"""SciFact retrieval quality and indexing throughput, measured side by side in one run.

Writes ../shared/data/scifact/corpus.jsonl as a folder (one ``<_id>.txt`` per abstract: title
line, blank line, text), indexes it with ``semindex index``, runs the split's queries through
``semindex search --queries ... --json``, scores each document by its best chunk and prints
nDCG@10 and Recall@100. Then it embeds the very same chunks with plain
``SentenceTransformer.encode`` and prints the pipeline's throughput as a ratio of that.

    python bench/scifact.py [--data ../shared/data/scifact] [--split test] [--model NAME]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMINDEX = [sys.executable, "-m", "cli"]


def write_corpus(corpus_file: Path, folder: Path, limit: int | None = None) -> int:
    """One text file per abstract (the first ``limit`` only, if given); returns the number written."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    count = 0
    with open(corpus_file, encoding="utf-8") as handle:
        for line in handle:
            if limit is not None and count >= limit:
                break
            record = json.loads(line)
            doc_id = str(record["_id"]).replace("/", "_")
            body = f"{record.get('title', '').strip()}\n\n{record.get('text', '').strip()}\n"
            (folder / f"{doc_id}.txt").write_text(body, encoding="utf-8")
            count += 1
    return count


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    with open(path, encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter="\t")
        next(reader)  # header
        for query_id, doc_id, score in reader:
            qrels[query_id][doc_id] = int(score)
    return qrels


def read_queries(path: Path, wanted: set[str]) -> list[tuple[str, str]]:
    queries = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if str(record["_id"]) in wanted:
                queries.append((str(record["_id"]), " ".join(record["text"].split())))
    return queries


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
    positives = {doc for doc, rel in relevant.items() if rel > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def documents_by_best_chunk(results: list[dict]) -> list[str]:
    """Documents in order of their best chunk's score (results arrive best first)."""
    seen: dict[str, None] = {}
    for hit in results:
        seen.setdefault(Path(hit["path"]).stem, None)
    return list(seen)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, **kwargs)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(command)}\n{result.stderr}")
    return result


def plain_encode(index_dir: Path, model: str | None, batch_size: int = 32) -> None:
    """Print the seconds plain SentenceTransformer.encode takes over the index's chunk texts.

    Runs in its own process, like the pipeline, so both start from the same state.
    """
    sys.path.insert(0, str(ROOT))
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    from indexer.models import resolve_model

    texts = pq.read_table(index_dir / "chunks.parquet", columns=["text"]).column("text").to_pylist()
    st = SentenceTransformer(resolve_model(model).location, device="cpu")
    started = time.perf_counter()
    st.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    print(json.dumps({"chunks": len(texts), "seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default=None)
    parser.add_argument("--skip-throughput", action="store_true", help="only measure quality")
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="index only the first N abstracts (quality figures then mean little)",
    )
    parser.add_argument("--baseline", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline:
        plain_encode(args.baseline, args.model)
        return

    if not (args.data / "corpus.jsonl").is_file():
        sys.exit(f"Error: no SciFact data at {args.data}; pass --data DIR (a BEIR folder with corpus.jsonl)")
    corpus_dir, index_dir = args.work / "corpus", args.work / "index"
    documents = write_corpus(args.data / "corpus.jsonl", corpus_dir, args.limit)
    print(f"corpus: {documents} documents written to {corpus_dir}")

    command = [
        *SEMINDEX,
        "index",
        str(corpus_dir),
        "--index",
        str(index_dir),
        "--rebuild",
        "--quiet",
        "--json",
    ]
    if args.model:
        command += ["--model", args.model]
    started = time.perf_counter()
    report = json.loads(run(command).stdout)
    wall = time.perf_counter() - started
    print(
        f"index: {report['chunks']} chunks from {report['files_indexed']} files, "
        f"{report['seconds']:.1f} s in the build ({report['model_seconds']:.1f} s loading the model), "
        f"{wall:.1f} s wall"
    )

    qrels = read_qrels(args.data / "qrels" / f"{args.split}.tsv")
    queries = read_queries(args.data / "queries.jsonl", set(qrels))
    queries_file = args.work / f"queries-{args.split}.txt"
    queries_file.write_text("".join(text + "\n" for _, text in queries), encoding="utf-8")
    started = time.perf_counter()
    output = run(
        [
            *SEMINDEX,
            "search",
            "--queries",
            str(queries_file),
            "--index",
            str(index_dir),
            "-k",
            "300",
            "--json",
        ]
    ).stdout
    search_seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    if len(lines) != len(queries):
        sys.exit(f"expected {len(queries)} result lines, got {len(lines)}")
    ndcg = recall = 0.0
    for (query_id, _), line in zip(queries, lines, strict=True):
        ranked = documents_by_best_chunk(line["results"])
        ndcg += ndcg_at(ranked, qrels[query_id], 10)
        recall += recall_at(ranked, qrels[query_id], 100)
    print(f"search: {len(queries)} queries in {search_seconds:.1f} s wall (one process, model load included)")
    print()
    print(f"| SciFact {args.split} ({len(queries)} queries) | value |")
    print("|---|---|")
    print(f"| nDCG@10 | {ndcg / len(queries):.4f} |")
    print(f"| Recall@100 | {recall / len(queries):.4f} |")

    if args.skip_throughput:
        return
    command = [sys.executable, __file__, "--baseline", str(index_dir)]
    if args.model:
        command += ["--model", args.model]
    measured = json.loads(run(command).stdout)
    baseline, chunks = measured["seconds"], measured["chunks"]
    pipeline = report["seconds"] - report["model_seconds"]
    ours, plain = chunks / pipeline, chunks / baseline
    print()
    print("| indexing throughput (same chunks, same run) | chunks/s | tokens/s |")
    print("|---|---|---|")
    print(
        f"| semindex index (walk+read+chunk+embed+write) | {ours:.1f} | {report['tokens'] / pipeline:.0f} |"
    )
    print(f"| plain SentenceTransformer.encode | {plain:.1f} | {report['tokens'] / baseline:.0f} |")
    print(f"| ratio | {ours / plain:.3f} | |")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
