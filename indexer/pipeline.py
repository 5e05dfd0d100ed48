"""Feeding chunks to the model and the writer: large batches, longest first, with progress."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.records import BuildReport, Chunk, SourceFile
from indexer.reuse import PreviousIndex
from indexer.store import PartWriter


@dataclass(frozen=True)
class BuildProgress:
    """A snapshot of a running build, handed to the progress callback."""

    stage: str  # "loading model", "scanning" or "embedding"
    files_total: int
    bytes_total: int
    files_done: int
    bytes_done: int
    chunks_embedded: int
    elapsed: float  # seconds since the stage began


ProgressCallback = Callable[[BuildProgress], None]


def embed_in_length_order(
    embedder: SentenceTransformerEmbedder,
    texts: Sequence[str],
    tokens: Sequence[int],
    slice_size: int,
    on_slice: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed ``texts`` (of ``tokens`` tokens each) longest first, ``slice_size`` at a time; rows
    return in input order.

    Sorting a large batch by token count keeps each model batch of similar lengths (little
    padding), and the slices let progress be reported while a large batch is embedded.
    """
    order = sorted(range(len(texts)), key=lambda i: tokens[i], reverse=True)
    vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), slice_size):
        rows = order[start : start + slice_size]
        vectors[rows] = embedder.embed_documents([texts[i] for i in rows])
        if on_slice is not None:
            on_slice(len(rows))
    return vectors


class Pipeline:
    """Feeds chunks to the model in large batches and to the writer, reporting progress."""

    def __init__(
        self,
        sources: list[SourceFile],
        embedder: SentenceTransformerEmbedder,
        config: BuildConfig,
        writer: PartWriter,
        report: BuildReport,
        progress: ProgressCallback | None,
        previous: PreviousIndex | None = None,
    ) -> None:
        self.sources, self.embedder, self.config = sources, embedder, config
        self.writer, self.report, self.progress = writer, report, progress
        self.previous = previous
        self.started = time.perf_counter()
        self.bytes_total = sum(s.size for s in sources)
        self.files_done = self.bytes_done = 0
        self.batch: list[Chunk] = []
        self.batch_files: list[SourceFile] = []
        self._notify(0)

    def add(self, chunks: list[Chunk], finished: SourceFile | None) -> None:
        """Queue ``chunks``; ``finished`` is a file all of whose chunks are now queued."""
        self.batch.extend(chunks)
        if finished is not None:
            self.batch_files.append(finished)
        if len(self.batch) >= self.config.embed_batch_chunks:
            self.flush()

    def flush(self) -> None:
        batch, files = self.batch, self.batch_files
        batch_bytes = sum(s.size for s in files)
        embedded = 0

        def on_slice(count: int) -> None:
            nonlocal embedded
            embedded += count
            self.report.chunks += count
            # Files finish together at the end of a batch; estimate bytes in between for the ETA.
            self._notify(self.bytes_done + int(batch_bytes * embedded / len(batch)))

        if batch:
            vectors = np.empty((len(batch), self.embedder.dimension), dtype=np.float32)
            known, reused = self.previous.vectors(batch) if self.previous is not None else ([], None)
            if known:
                vectors[known] = reused
                on_slice(len(known))
            known_set = set(known)
            fresh = [i for i in range(len(batch)) if i not in known_set]
            embed_started = time.perf_counter()
            if fresh:
                vectors[fresh] = embed_in_length_order(
                    self.embedder,
                    [batch[i].embed_text for i in fresh],
                    [batch[i].tokens for i in fresh],
                    self.config.embed_slice_chunks,
                    on_slice,
                )
            self.report.embed_seconds += time.perf_counter() - embed_started
            self.report.chunks_reused += len(known)
            self.report.chunks_embedded += len(fresh)
            self.writer.add(batch, vectors)
            self.report.tokens += sum(c.tokens for c in batch)
        self.files_done += len(files)
        self.bytes_done += batch_bytes
        self.batch, self.batch_files = [], []
        self._notify(self.bytes_done)

    def _notify(self, bytes_done: int) -> None:
        if self.progress is not None:
            self.progress(
                BuildProgress(
                    "embedding",
                    len(self.sources),
                    self.bytes_total,
                    self.files_done,
                    bytes_done,
                    self.report.chunks,
                    time.perf_counter() - self.started,
                )
            )
