"""Reuse what an existing index already holds, so an update embeds only what changed.

An unchanged file (same size and modification time) keeps its chunks without being read again;
any chunk whose text (with its section) was embedded before, in any file, keeps its vector, so
edited, renamed and copied files cost only their new chunks.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from indexer.chunking import content_hash
from indexer.manifest import CHUNKS_FILE, IndexManifest
from indexer.records import Chunk, SourceFile
from indexer.store import check_files, read_vectors


def embedding_key(chunk: Chunk) -> str:
    """What identifies a chunk's vector under one model: the exact text the model read."""
    return content_hash(chunk.embed_text)


def _mtime_us(seconds: float) -> int:
    return round(seconds * 1_000_000)  # as chunks.parquet stores it


def _seconds(moment: Any) -> float:
    """A stored timestamp as seconds, exact to the microsecond (datetime.timestamp() is not)."""
    if moment is None:
        return 0.0
    whole = int(moment.replace(microsecond=0).timestamp())
    return (whole * 1_000_000 + moment.microsecond) / 1_000_000


class PreviousIndex:
    """The chunks and vectors of the index an update replaces."""

    def __init__(self, rows: list[dict[str, Any]], vectors: Any) -> None:
        self._rows = rows
        self._vectors = vectors
        self._by_path: dict[str, list[int]] = defaultdict(list)
        self._by_key: dict[str, int] = {}
        for number, row in enumerate(rows):
            self._by_path[row["path"]].append(number)
        self.paths = set(self._by_path)
        self._chunks = [self._chunk(row) for row in rows]
        for number, chunk in enumerate(self._chunks):
            self._by_key.setdefault(embedding_key(chunk), number)

    @classmethod
    def load(cls, directory: Path, manifest: IndexManifest) -> PreviousIndex | None:
        """The index at ``directory``, or None when it cannot be read (it is rebuilt then)."""
        try:
            check_files(directory, manifest)
            vectors = read_vectors(directory, manifest)
            rows = pq.read_table(directory / CHUNKS_FILE).to_pylist()
        except Exception:  # a damaged previous index is simply not reused
            return None
        return cls(rows, vectors) if len(rows) == vectors.ntotal else None

    @staticmethod
    def _chunk(row: dict[str, Any]) -> Chunk:
        mtime = row["file_mtime"]
        return Chunk(
            path=row["path"],
            ordinal=row["chunk"],
            text=row["text"],
            char_start=row["char_start"],
            char_end=row["char_end"],
            start_line=row["start_line"],
            end_line=row["end_line"],
            content_hash=row["content_hash"],
            file_size=row["file_size"],
            file_mtime=_seconds(mtime),
            tokens=row.get("tokens") or 0,
            page=row.get("page"),
            record=row.get("record"),
            section=row.get("section"),
        )

    def unchanged(self, source: SourceFile) -> list[Chunk] | None:
        """The file's chunks if it has the same size and modification time as before, else None."""
        numbers = self._by_path.get(source.path)
        if not numbers:
            return None
        first = self._chunks[numbers[0]]
        if first.file_size != source.size or _mtime_us(first.file_mtime) != _mtime_us(source.mtime):
            return None
        return [self._chunks[n] for n in numbers]

    def vectors(self, chunks: list[Chunk]) -> tuple[list[int], np.ndarray]:
        """Positions in ``chunks`` whose vectors are known, and those vectors."""
        found = [
            (i, self._by_key[key]) for i, key in enumerate(map(embedding_key, chunks)) if key in self._by_key
        ]
        if not found:
            return [], np.zeros((0, self._vectors.d), dtype=np.float32)
        ids = np.array([row for _, row in found], dtype=np.int64)
        return [i for i, _ in found], self._vectors.reconstruct_batch(ids)
