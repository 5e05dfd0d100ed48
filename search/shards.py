"""Searching the parts of an index together: each part answers, and the top hits are merged.

The merge is exact: the k best of the union are the k best of the parts' k bests, so a
multi-part index answers as one FAISS index holding every vector would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import REBUILD_HINT, IndexCorruptError
from indexer.manifest import IndexManifest, PartRef
from indexer.store import ChunkTable, check_part_files, read_vectors


@dataclass
class OpenPart:
    """One part, loaded: its vectors in memory and its Parquet file open for row reads."""

    ref: PartRef
    vectors: Any
    rows: ChunkTable


def open_parts(directory: Path, manifest: IndexManifest) -> list[OpenPart]:
    """Open and check every part the manifest lists."""
    parts = []
    for ref in manifest.part_refs:
        check_part_files(directory, ref)
        vectors = read_vectors(directory, manifest, ref)
        rows = ChunkTable(directory / ref.chunks_name)
        if rows.num_rows != vectors.ntotal:
            raise IndexCorruptError(
                f"{directory / ref.chunks_name} has {rows.num_rows} rows but "
                f"{ref.vectors_name} has {vectors.ntotal} vectors; {REBUILD_HINT}"
            )
        parts.append(OpenPart(ref, vectors, rows))
    return parts


Hit = tuple[float, dict[str, Any]]


def search_parts(parts: Sequence[OpenPart], vectors: np.ndarray, k: int) -> list[list[Hit]]:
    """The ``k`` best (score, row) pairs per query over all parts, best first.

    Ties are broken by part order, then row number, so answers are the same on every run.
    """
    candidates: list[list[tuple[float, int, int]]] = [[] for _ in range(len(vectors))]
    for number, part in enumerate(parts):
        if part.vectors.ntotal == 0:
            continue
        scores, ids = part.vectors.search(vectors, min(k, int(part.vectors.ntotal)))
        for query, (row_scores, row_ids) in enumerate(zip(scores, ids, strict=True)):
            candidates[query].extend(
                (float(s), number, int(i)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0
            )
    best = [sorted(found, key=lambda c: (-c[0], c[1], c[2]))[:k] for found in candidates]
    wanted: dict[int, set[int]] = {}
    for found in best:
        for _, number, row in found:
            wanted.setdefault(number, set()).add(row)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for number, ids in wanted.items():
        ordered = sorted(ids)
        for row, data in zip(ordered, parts[number].rows.rows(ordered), strict=True):
            rows[(number, row)] = data
    return [[(score, rows[(number, row)]) for score, number, row in found] for found in best]
