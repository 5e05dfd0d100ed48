"""Retrieval quality on judged data in the BEIR layout: nDCG@10, MRR@10 and Recall@100.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``,
``text``) and ``qrels/<split>.tsv`` (query id, document id, relevance, with a header line).
Documents are ranked by their best chunk.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import InputError
from search.results import SearchResult

DEPTH = 100  # documents ranked per query (Recall@100)


@dataclass(frozen=True)
class Judged:
    """The queries of one split and their relevance judgements."""

    queries: list[tuple[str, str]]  # (id, text)
    qrels: dict[str, dict[str, int]]


def load_judged(folder: Path, split: str) -> Judged:
    """Read ``queries.jsonl`` and ``qrels/<split>.tsv`` from a BEIR folder."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    queries_path = folder / "queries.jsonl"
    for path in (folder / "corpus.jsonl", queries_path, qrels_path):
        if not path.is_file():
            splits = (
                sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))
                if (folder / "qrels").is_dir()
                else []
            )
            hint = f" (splits here: {', '.join(splits)})" if splits and path == qrels_path else ""
            raise InputError(f"{path} is missing: {folder} is not a BEIR folder{hint}")
    qrels: dict[str, dict[str, int]] = {}
    try:
        with open(qrels_path, encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter="\t"))
        for row in rows[1:]:
            if len(row) >= 3:
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
        queries = []
        with open(queries_path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    record = json.loads(line)
                    if str(record["_id"]) in qrels:
                        queries.append((str(record["_id"]), " ".join(str(record["text"]).split())))
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the judgements in {folder}: {exc}") from exc
    if not queries:
        raise InputError(f"no judged queries for split {split!r} in {folder}")
    return Judged(queries, qrels)


def ranked_documents(results: Sequence[SearchResult], doc_id: Callable[[SearchResult], str]) -> list[str]:
    """Document ids in the order of their best chunk."""
    return list(dict.fromkeys(doc_id(r) for r in results))


def ndcg_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain of the first ``k`` documents."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
    best = sum(rel / math.log2(rank + 2) for rank, rel in enumerate(ideal))
    return dcg / best if best else 0.0


def mrr_at(ranked: Sequence[str], relevant: dict[str, int], k: int = 10) -> float:
    """The reciprocal rank of the first relevant document within ``k``."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def recall_at(ranked: Sequence[str], relevant: dict[str, int], k: int = DEPTH) -> float:
    """The share of relevant documents within the first ``k``."""
    positives = {doc for doc, rel in relevant.items() if rel > 0}
    return len(positives & set(ranked[:k])) / len(positives) if positives else 0.0


def scores(rankings: dict[str, list[str]], judged: Judged) -> dict[str, float]:
    """Mean nDCG@10, MRR@10 and Recall@100 over the judged queries."""
    n = len(judged.queries)
    totals = {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 0.0}
    for query_id, _ in judged.queries:
        ranked, relevant = rankings.get(query_id, []), judged.qrels[query_id]
        totals["ndcg@10"] += ndcg_at(ranked, relevant)
        totals["mrr@10"] += mrr_at(ranked, relevant)
        totals["recall@100"] += recall_at(ranked, relevant)
    return {name: value / n for name, value in totals.items()}


CHUNK_DEPTH = 300  # chunks read per query, so that DEPTH distinct documents are ranked


@dataclass
class EvalReport:
    """What ``evaluate_beir`` measured."""

    index_dir: Path
    split: str
    queries: int
    metrics: dict[str, dict[str, float]]  # mode → metric → value
    seconds: dict[str, float]  # mode → seconds for all queries

    def to_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "index": str(self.index_dir),
            "split": self.split,
            "queries": self.queries,
            "metrics": {m: {k: round(v, 4) for k, v in values.items()} for m, values in self.metrics.items()},
            "seconds": {m: round(s, 3) for m, s in self.seconds.items()},
        }


def evaluate_beir(
    folder: str | Path,
    index_dir: str | Path | None = None,
    *,
    split: str = "test",
    modes: Sequence[str] = ("keyword", "dense", "hybrid"),
    model: str | None = None,
    progress: Callable[[object], None] | None = None,
) -> EvalReport:
    """Index a BEIR corpus (or bring its index up to date) and score each mode on its judged queries.

    The corpus is indexed as records (one document per line of ``corpus.jsonl``, id ``_id``,
    text ``title`` and ``text``), into ``folder/.semindex`` unless ``index_dir`` is given.
    """
    import time

    from indexer.build import build_index
    from indexer.config import BuildConfig
    from indexer.paths import resolve_path
    from search.index import Index

    root = resolve_path(folder)
    judged = load_judged(root, split)
    target = resolve_path(index_dir) if index_dir else root / ".semindex"
    config = BuildConfig(include=("/corpus.jsonl",), records=True)
    build_index(root, target, model=model, config=config, progress=progress)
    index = Index.open(target)
    texts = [text for _, text in judged.queries]
    metrics, seconds = {}, {}
    for mode in modes:
        started = time.perf_counter()
        rankings = {}
        for start in range(0, len(texts), 64):
            batch = index.search_many(texts[start : start + 64], k=CHUNK_DEPTH, mode=mode)
            for (query_id, _), results in zip(judged.queries[start : start + 64], batch, strict=True):
                rankings[query_id] = ranked_documents(results, lambda r: str(r.record))[:DEPTH]
        seconds[mode] = time.perf_counter() - started
        metrics[mode] = scores(rankings, judged)
    return EvalReport(target, split, len(judged.queries), metrics, seconds)
