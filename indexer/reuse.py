"""Reuse what an existing index already holds, so an update embeds only what changed.

A file with the same size and modification time as before keeps its rows without being read
again; one whose time changed but whose SHA-256 did not keeps them too. Any chunk whose text
and section were embedded before, in any file, keeps its vector, so edited, renamed and copied
files cost only their new chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexer.errors import IndexCorruptError
from indexer.filetable import FileEntry, read_file_table
from indexer.keywords import KeywordPart
from indexer.manifest import IndexManifest, PartRef
from indexer.records import Chunk
from indexer.store import CHUNK_SCHEMA, all_vectors, check_part_files, read_vectors

ReuseKey = tuple[str, "str | None"]


def reuse_key(content_hash: str, section: str | None) -> ReuseKey:
    """What identifies a chunk's vector under one model: the text it read (text and section)."""
    return (content_hash, section or None)


class PreviousIndex:
    """The current version of an index that an update will replace."""

    def __init__(self, directory: Path, manifest: IndexManifest, files: dict[str, FileEntry]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.files = files
        self.parts = {part.id: part for part in manifest.part_refs}
        self._vectors: dict[str, Any] = {}
        self._keys: dict[ReuseKey, tuple[str, int]] | None = None
        self._sound: set[str] = set()  # parts that passed the full check
        self._unusable: set[str] = set()  # parts that failed it: nothing is reused from them

    @classmethod
    def load(cls, directory: Path, manifest: IndexManifest) -> PreviousIndex | None:
        """The index at ``directory``, or None when it cannot be read (it is rebuilt then)."""
        try:
            for part in manifest.part_refs:
                check_part_files(directory, part)
                names = set(pq.read_schema(directory / part.chunks_name).names)
                if not set(CHUNK_SCHEMA.names) <= names:
                    return None  # written by an early semindex without every column
            return cls(directory, manifest, read_file_table(directory, manifest))
        except Exception:  # a damaged previous index is simply not reused
            return None

    def entry(self, path: str) -> FileEntry | None:
        """What the index knows about the file at ``path``."""
        return self.files.get(path)

    def damaged(self, parts: list[PartRef]) -> set[str]:
        """The ids of those parts whose files fail the full check (whole-file SHA-256)."""
        found = set()
        for part in parts:
            if part.id not in self._sound:
                try:
                    check_part_files(self.directory, part, full=True)
                    self._sound.add(part.id)
                except IndexCorruptError:
                    found.add(part.id)
        self._unusable |= found
        return found

    def part_vectors(self, part_id: str) -> Any:
        """A part's FAISS index, loaded once (after its full check)."""
        index = self._vectors.get(part_id)
        if index is None:
            index = read_vectors(self.directory, self.manifest, self.parts[part_id])
            self._vectors[part_id] = index
        return index

    def part_rows(self, part: PartRef) -> tuple[pa.Table, np.ndarray, KeywordPart | None]:
        """All rows of a part, their vectors, and their keyword postings (None if it has none)."""
        table = pq.read_table(self.directory / part.chunks_name)
        keywords = KeywordPart.open(self.directory / part.keywords_name) if part.has_keywords else None
        return table, all_vectors(self.part_vectors(part.id)), keywords

    def _key_map(self) -> dict[ReuseKey, tuple[str, int]]:
        if self._keys is None:
            keys: dict[ReuseKey, tuple[str, int]] = {}
            usable = [p for p in self.parts.values() if p.id not in self._unusable]
            damaged = self.damaged(usable)  # each part hashed once
            for part in [p for p in usable if p.id not in damaged]:
                table = pq.read_table(self.directory / part.chunks_name, columns=["content_hash", "section"])
                hashes = table.column("content_hash").to_pylist()
                sections = table.column("section").to_pylist()
                for row, key in enumerate(zip(hashes, sections, strict=True)):
                    keys.setdefault(reuse_key(*key), (part.id, row))
            self._keys = keys
        return self._keys

    def vectors(self, chunks: list[Chunk]) -> tuple[list[int], np.ndarray]:
        """Positions in ``chunks`` whose vectors are known, and those vectors."""
        return self.vectors_by_key([reuse_key(c.content_hash, c.section) for c in chunks])

    def vectors_by_key(self, wanted: list[ReuseKey]) -> tuple[list[int], np.ndarray]:
        """Positions in ``wanted`` whose vectors are known, and those vectors."""
        keys = self._key_map()
        found = [(i, keys[k]) for i, k in enumerate(wanted) if k in keys]
        vectors = np.zeros((len(found), self.manifest.dimension), dtype=np.float32)
        by_part: dict[str, list[tuple[int, int]]] = {}
        for slot, (_, (part_id, row)) in enumerate(found):
            by_part.setdefault(part_id, []).append((slot, row))
        for part_id, pairs in by_part.items():
            rows = np.array([row for _, row in pairs], dtype=np.int64)
            vectors[[slot for slot, _ in pairs]] = self.part_vectors(part_id).reconstruct_batch(rows)
        return [i for i, _ in found], vectors
