"""Query embeddings for many threads at once: one model call at a time, queries batched.

A server answers requests in a pool of threads. Each would run the model for its own query;
side by side they fight over the cores (every call starts its own intra-op threads), and one
query at a time wastes the model's batching. ``QueryBatcher`` lets a thread that finds the
model busy leave its texts in a queue: whoever runs the model next takes everything queued
and embeds it as one batch. Nobody waits longer than the call in progress plus their own
batch, and at concurrency 8 a batch costs much less than its queries would one by one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

MAX_BATCH = 64  # texts in one model call; more queued than this wait for the next call


class _Request:
    __slots__ = ("done", "error", "texts", "vectors")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


class QueryBatcher:
    """Calls ``embed`` from one thread at a time, with all texts queued meanwhile in one batch."""

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], max_batch: int = MAX_BATCH) -> None:
        self._embed = embed
        self._max_batch = max_batch
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.calls = 0  # model calls made (for tests and benchmarks)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        request = _Request(list(texts))
        with self._queue_lock:
            self._queue.append(request)
        while True:
            with self._model_lock:
                if request.done:  # a call made while we waited embedded our texts too
                    break
                self._run_batch()
            if request.done:
                break
        if request.error is not None:
            raise request.error
        assert request.vectors is not None
        return request.vectors

    def _run_batch(self) -> None:
        """Embed what is queued (up to ``max_batch`` texts, at least one request); model lock held."""
        with self._queue_lock:
            batch: list[_Request] = []
            size = 0
            while self._queue and (not batch or size + len(self._queue[0].texts) <= self._max_batch):
                request = self._queue.pop(0)
                batch.append(request)
                size += len(request.texts)
        if not batch:
            return
        texts = [text for request in batch for text in request.texts]
        self.calls += 1
        try:
            vectors = self._embed(texts)
        except BaseException as exc:
            for request in batch:
                request.error, request.done = exc, True
            return
        start = 0
        for request in batch:
            request.vectors = vectors[start : start + len(request.texts)]
            start += len(request.texts)
            request.done = True
