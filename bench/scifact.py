"""SciFact retrieval quality and indexing throughput, measured side by side in one run.

Writes ../shared/data/scifact/corpus.jsonl as a folder (one ``<_id>.txt`` per abstract: title
line, blank line, text), indexes it with ``semindex index``, runs each split's queries through
``semindex search --queries ... --json --mode M`` for each mode (keyword, dense, hybrid), scores
each document by its best chunk and prints nDCG@10, MRR@10 and Recall@100. ``--tune`` scores
fusion settings on the train queries and prints the best with their test figures. Then it
embeds the very same chunks with plain ``SentenceTransformer.encode`` and prints the
pipeline's throughput as a ratio of that.

    python bench/scifact.py [--data ../shared/data/scifact] [--splits train,test] [--model NAME]
                            [--tune] [--skip-throughput]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMINDEX = [sys.executable, "-m", "cli"]
MODES = ("keyword", "dense", "hybrid")
sys.path.insert(0, str(ROOT))


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
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    from indexer.models import resolve_model

    texts = pq.read_table(index_dir / "chunks", columns=["text"]).column("text").to_pylist()
    st = SentenceTransformer(resolve_model(model).location, device="cpu")
    started = time.perf_counter()
    st.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
    print(json.dumps({"chunks": len(texts), "seconds": time.perf_counter() - started}))


def mode_scores(index_dir: Path, judged, split: str, work: Path, mode: str) -> tuple[dict[str, float], float]:
    """Run the split's queries through ``semindex search --mode`` (one process) and score them."""
    from search.evaluate import scores

    queries_file = work / f"queries-{split}.txt"
    queries_file.write_text("".join(text + "\n" for _, text in judged.queries), encoding="utf-8")
    started = time.perf_counter()
    command = [*SEMINDEX, "search", "--queries", str(queries_file), "--index", str(index_dir)]
    output = run([*command, "-k", "300", "--json", "--mode", mode]).stdout
    seconds = time.perf_counter() - started
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    if len(lines) != len(judged.queries):
        sys.exit(f"expected {len(judged.queries)} result lines, got {len(lines)}")
    rankings = {
        qid: documents_by_best_chunk(line["results"])
        for (qid, _), line in zip(judged.queries, lines, strict=True)
    }
    return scores(rankings, judged), seconds


def tune_fusion(index_dir: Path, train, test) -> None:
    """Score fusion settings on the train queries; print the best and their test figures."""
    from search.evaluate import scores
    from search.index import HYBRID_DEPTH, Index
    from search.rank import DENSE_WEIGHT, RRF_K, reciprocal_rank_fusion
    from search.shards import dense_hits

    index = Index.open(index_dir)
    depth = 300

    def candidates(judged):
        texts = [text for _, text in judged.queries]
        vectors = index._normalised(index.embedder.embed_queries(texts))
        dense = dense_hits(index._parts, vectors, depth)
        keyword = [index.keyword.scores(text).top(depth) for text in texts]
        paths = {}
        keys = {(p, r) for hits in dense + keyword for _, p, r in hits}
        rows = fetch(index, keys)
        for key, row in rows.items():
            paths[key] = Path(row["path"]).stem
        return dense, keyword, paths

    def fetch(index, keys):
        from search.shards import fetch_rows

        return fetch_rows(index._parts, keys)

    def evaluate(judged, data, k, weight, read):
        dense, keyword, paths = data
        rankings = {}
        for (qid, _), d, w in zip(judged.queries, dense, keyword, strict=True):
            fused = reciprocal_rank_fusion(d[:read], w[:read], k=k, dense_weight=weight)
            rankings[qid] = list(dict.fromkeys(paths[(f.part, f.row)] for f in fused))[:100]
        return scores(rankings, judged)

    train_data, test_data = candidates(train), candidates(test)
    grid = list(itertools.product((5, 10, 20, 40, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0), (50, 100, 300)))
    grid.append((RRF_K, DENSE_WEIGHT, HYBRID_DEPTH))
    results = [(evaluate(train, train_data, k, w, read)["ndcg@10"], k, w, read) for k, w, read in grid]
    results.sort(reverse=True)
    print("\n| RRF k | dense weight | depth | train nDCG@10 | test nDCG@10 |")
    print("|---|---|---|---|---|")
    for ndcg, k, w, read in results[:8]:
        test_ndcg = evaluate(test, test_data, k, w, read)["ndcg@10"]
        print(f"| {k} | {w} | {read} | {ndcg:.4f} | {test_ndcg:.4f} |")
    shipped = next(r for r in results if r[1:] == (RRF_K, DENSE_WEIGHT, HYBRID_DEPTH))
    test_ndcg = evaluate(test, test_data, RRF_K, DENSE_WEIGHT, HYBRID_DEPTH)["ndcg@10"]
    print(f"| {RRF_K} | {DENSE_WEIGHT} | {HYBRID_DEPTH} (shipped) | {shipped[0]:.4f} | {test_ndcg:.4f} |")


def main() -> None:
    from search.evaluate import load_judged

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "scifact")
    parser.add_argument("--splits", default="train,test", help="qrels splits to score, comma-separated")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--model", default=None)
    parser.add_argument(
        "--skip-throughput",
        action="store_true",
        help="only measure quality (an existing index is updated, not rebuilt)",
    )
    parser.add_argument("--tune", action="store_true", help="score fusion settings on the train split")
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
    reuse = args.skip_throughput and args.limit is None and (index_dir / "manifest.json").is_file()
    if reuse and corpus_dir.is_dir():
        print(f"corpus: reusing {corpus_dir}")
    else:
        documents = write_corpus(args.data / "corpus.jsonl", corpus_dir, args.limit)
        print(f"corpus: {documents} documents written to {corpus_dir}")

    command = [*SEMINDEX, "index", str(corpus_dir), "--index", str(index_dir), "--quiet", "--json"]
    if not args.skip_throughput:
        command.append("--rebuild")
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

    splits = [s for s in args.splits.split(",") if s]
    judged = {split: load_judged(args.data, split) for split in splits}
    print()
    print("| SciFact split | mode | queries | nDCG@10 | MRR@10 | Recall@100 | s (one process) |")
    print("|---|---|---|---|---|---|---|")
    for split in splits:
        for mode in args.modes.split(","):
            values, seconds = mode_scores(index_dir, judged[split], split, args.work, mode)
            print(
                f"| {split} | {mode} | {len(judged[split].queries)} | {values['ndcg@10']:.4f} | "
                f"{values['mrr@10']:.4f} | {values['recall@100']:.4f} | {seconds:.1f} |",
                flush=True,
            )
    if args.tune and {"train", "test"} <= set(judged):
        tune_fusion(index_dir, judged["train"], judged["test"])

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
