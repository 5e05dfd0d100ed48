"""One Index searched from many threads at once: the same answers as one at a time, batched."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from indexer.embedding import SentenceTransformerEmbedder
from search import Index
from search.batching import QueryBatcher

QUERIES = [
    "effects of sleep on memory",
    "how do vaccines train the immune system",
    "recipes with rice",
    "the history of the printing press",
    "black holes and gravity",
    "photosynthesis in plants",
    "learning a second language",
    "ocean currents and climate",
]


@pytest.mark.parametrize("mode", ["dense", "hybrid", "keyword"])
def test_threads_get_the_answers_one_thread_gets(sample_index: Path, mode: str) -> None:
    alone = Index.open(sample_index)
    expected = {
        q: [(r.path, r.chunk, round(r.score, 5)) for r in alone.search(q, k=5, mode=mode)] for q in QUERIES
    }

    shared = Index.open(sample_index)  # cold: the model is loaded by whichever thread comes first
    start = threading.Barrier(8)

    def ask(query: str) -> list[tuple[str, int, float]]:
        start.wait()
        answers = []
        for _ in range(5):
            answers = [(r.path, r.chunk, round(r.score, 5)) for r in shared.search(query, k=5, mode=mode)]
        return answers

    with ThreadPoolExecutor(8) as pool:
        got = dict(zip(QUERIES, pool.map(ask, QUERIES), strict=True))
    assert got == expected


def test_queries_waiting_for_the_model_share_its_next_call(embedder: SentenceTransformerEmbedder) -> None:
    entered, release = threading.Event(), threading.Event()
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        if len(calls) == 1:
            entered.set()
            release.wait(10)  # hold the model while the other threads queue up
        return embedder.embed_queries(texts)

    batcher = QueryBatcher(embed)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(batcher, [QUERIES[0]])
        assert entered.wait(10)
        rest = [pool.submit(batcher, [q]) for q in QUERIES[1:]]
        while len(batcher._queue) < len(rest):  # every other thread is waiting with its query
            threading.Event().wait(0.01)
        release.set()
        vectors = [first.result(10)] + [f.result(10) for f in rest]

    assert [len(c) for c in calls] == [1, len(QUERIES) - 1]  # seven queries, one model call
    direct = embedder.embed_queries(QUERIES)
    for number, got in enumerate(vectors):
        assert got.shape == (1, embedder.dimension)
        assert float(got[0] @ direct[number]) > 0.9999  # each thread gets its own query's vector


def test_an_error_in_the_model_reaches_every_caller_of_that_batch_only() -> None:
    def embed(texts: list[str]) -> np.ndarray:
        if "bad" in texts:
            raise RuntimeError("the model failed")
        return np.ones((len(texts), 3), dtype=np.float32)

    batcher = QueryBatcher(embed)
    with pytest.raises(RuntimeError, match="the model failed"):
        batcher(["bad"])
    assert batcher(["good", "also good"]).shape == (2, 3)
    assert not batcher._queue
