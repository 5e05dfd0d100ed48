"""Searching the parts of an index together: each part answers, and the top hits are merged.

The merge is exact: the k best of the union are the k best of the parts' k bests, so a
multi-part index answers as one FAISS index holding every vector would.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.ann import RERANK, rescore, search_params
from indexer.embedding import SemindexWarning
from indexer.errors import REBUILD_HINT, IndexCorruptError
from indexer.keywords import KeywordPart
from indexer.manifest import IndexManifest, PartRef
from indexer.store import ChunkTable, ann_problem, check_part_files, read_vectors
from indexer.threads import chosen_threads


@dataclass
class OpenPart:
    """One part, loaded: its vectors and keyword postings in memory, its Parquet file open."""

    ref: PartRef
    vectors: Any
    rows: ChunkTable
    keywords: KeywordPart | None = None
    ann: Any = None  # the part's approximate-search index, if the index type gives it one
    ann_type: str = "flat"
    ann_params: dict[str, Any] | None = None


def open_parts(directory: Path, manifest: IndexManifest) -> list[OpenPart]:
    """Open and check every part the manifest lists."""
    parts = []
    for ref in manifest.part_refs:
        check_part_files(directory, ref)
        vectors = read_vectors(directory, manifest, ref, mmap=True)
        rows = ChunkTable(directory / ref.chunks_name)
        if rows.num_rows != vectors.ntotal:
            raise IndexCorruptError(
                f"{directory / ref.chunks_name} has {rows.num_rows} rows but "
                f"{ref.vectors_name} has {vectors.ntotal} vectors; {REBUILD_HINT}"
            )
        keywords = None
        if ref.has_keywords:
            path = directory / ref.keywords_name
            try:
                keywords = KeywordPart.load(path)
            except (OSError, ValueError, KeyError) as exc:
                raise IndexCorruptError(f"{path} is not a readable keyword file; {REBUILD_HINT}") from exc
            if keywords.num_rows != ref.rows:
                raise IndexCorruptError(
                    f"{path} has {keywords.num_rows} rows, not {ref.rows}; {REBUILD_HINT}"
                )
        ann, ann_type = None, "flat"
        problem = ann_problem(directory, ref)
        if ref.ann is not None and problem is None:
            try:
                ann, ann_type = _read_ann(directory, ref, manifest.dimension), str(ref.ann.get("type"))
            except IndexCorruptError as exc:
                problem = str(exc).split("; rebuild", 1)[0]
        if problem is not None:
            warnings.warn(
                f"{problem}; searching that part exactly (slower) until 'semindex index FOLDER' "
                "builds it again",
                SemindexWarning,
                stacklevel=3,
            )
        params = dict(manifest.faiss.get("params") or {})
        parts.append(OpenPart(ref, vectors, rows, keywords, ann, ann_type, params))
    return parts


def _read_ann(directory: Path, ref: PartRef, dimension: int) -> Any:
    import faiss

    assert ref.ann is not None
    path = directory / str(ref.ann["name"])
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is not a readable FAISS index; {REBUILD_HINT}") from exc
    expected = {"hnsw": "IndexHNSWFlat", "ivf": "IndexIVFFlat", "ivfpq": "IndexIVFPQ"}.get(
        str(ref.ann.get("type"))
    )
    if type(index).__name__ != expected:
        raise IndexCorruptError(
            f"{path} holds a {type(index).__name__}, not the {expected} the manifest says"
        )
    if index.ntotal != ref.rows or index.d != dimension:
        raise IndexCorruptError(
            f"{path} holds {index.ntotal} vectors of {index.d} dimensions, the manifest says "
            f"{ref.rows} of {dimension}; {REBUILD_HINT}"
        )
    return index


Hit = tuple[float, int, int]  # (score, part number, row)


def dense_hits(
    parts: Sequence[OpenPart], vectors: np.ndarray, k: int, masks: Sequence[np.ndarray | None] | None = None
) -> list[list[Hit]]:
    """The ``k`` best (cosine, part number, row) per query over all parts, best first.

    ``masks`` (one per part, None for all rows) restrict each part to the rows they allow;
    FAISS then searches those ids only. Ties are broken by part order, then row number, so
    answers are the same on every run.
    """

    assigned = _shared_assignment(parts, vectors) if masks is None else None

    def one(number: int) -> tuple[np.ndarray, np.ndarray] | None:
        part = parts[number]
        allowed = masks[number] if masks is not None else None
        return _search_part(part, vectors, k, allowed, assigned)

    workers = _workers(len(parts))
    if workers > 1:  # FAISS releases the GIL: parts are searched side by side
        answers = list(_pool(workers).map(one, range(len(parts))))
    else:
        answers = [one(number) for number in range(len(parts))]
    candidates: list[list[Hit]] = [[] for _ in range(len(vectors))]
    for number, answer in enumerate(answers):
        if answer is None:
            continue
        scores, ids = answer
        for query, (row_scores, row_ids) in enumerate(zip(scores, ids, strict=True)):
            candidates[query].extend(
                (float(s), number, int(i)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0
            )
    return [sorted(found, key=lambda c: (-c[0], c[1], c[2]))[:k] for found in candidates]


def _training(part: OpenPart) -> str | None:
    """The id of the IVF training a part's ANN file copies (None: not an IVF part)."""
    if part.ann is None or part.ann_type not in ("ivf", "ivfpq") or part.ref.ann is None:
        return None
    trained = part.ref.ann.get("trained")
    return str(trained) if trained else None


# (training id, nearest lists, their scores) for a search's queries: the coarse assignment
# every part of one IVF training shares.
Assignment = tuple[str, np.ndarray, np.ndarray]


def _shared_assignment(parts: Sequence[OpenPart], vectors: np.ndarray) -> Assignment | None:
    """The parts share one IVF training, so the lists nearest each query are the same for all
    of them: find them once, not once a part (at 1M chunks in 16 parts, 16 searches of 4,096
    centroids a query become one)."""
    import faiss

    trainings = [t for t in (_training(p) for p in parts) if t is not None]
    if len(trainings) < 2 or len(set(trainings)) != 1:
        return None
    first = next(p for p in parts if _training(p) is not None)
    ivf = faiss.extract_index_ivf(first.ann)
    nprobe = min(int((first.ann_params or {}).get("nprobe", ivf.nprobe)), ivf.nlist)
    scores, lists = ivf.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), nprobe)
    return trainings[0], lists, scores


def _search_part(
    part: OpenPart,
    vectors: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    assigned: Assignment | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    import faiss

    count = int(part.vectors.ntotal) if allowed is None else int(allowed.sum())
    if count == 0:
        return None
    chooser = None
    if allowed is not None:
        bits = np.packbits(allowed, bitorder="little")
        chooser = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
    if part.ann is None:
        params = search_params("flat", {}, chooser) if chooser is not None else None
        if len(vectors) >= FEW_QUERIES:
            return part.vectors.search(vectors, min(k, count), params=params)
        with _one_thread(faiss):
            return part.vectors.search(vectors, min(k, count), params=params)
    wanted = min(k * RERANK if part.ann_type == "ivfpq" else k, count)
    if assigned is not None and chooser is None and _training(part) == assigned[0]:
        part.ann.nprobe = assigned[1].shape[1]  # the same for every search of this version
        scores, ids = part.ann.search_preassigned(vectors, wanted, assigned[1], assigned[2])
    else:
        params = search_params(part.ann_type, part.ann_params or {}, chooser)
        scores, ids = part.ann.search(vectors, wanted, params=params)
    if part.ann_type == "ivfpq":  # compressed vectors find candidates; exact ones score them
        scores, ids = rescore(part.vectors, vectors, ids, min(k, count))
    return scores, ids


# An exact search for fewer queries than this runs on one thread: FAISS's OpenMP threads cost
# more than they give for one query (1M vectors, 2 cores: 54 ms on one thread, 140 ms on two;
# bench/shards.py). BLAS takes over from 20 queries on, where threads do pay.
FEW_QUERIES = 20


@contextlib.contextmanager
def _one_thread(faiss: Any) -> Iterator[None]:
    """OpenMP's thread count is per calling thread: this changes it for this thread only."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _workers(parts: int) -> int:
    """Threads to search ``parts`` parts with: one per core up to 4 (or the --threads cap)."""
    cap = chosen_threads() or min(4, os.cpu_count() or 1)
    return max(1, min(cap, parts)) if parts >= 4 else 1


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="semindex-search")
    return _POOLS[workers]


def cosines(
    parts: Sequence[OpenPart], vector: np.ndarray, keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], float]:
    """The cosines of a query vector and the stored vectors at (part number, row) keys, read
    in one batch per part."""
    wanted: dict[int, list[int]] = {}
    for number, row in keys:
        wanted.setdefault(number, []).append(row)
    out: dict[tuple[int, int], float] = {}
    for number, rows in wanted.items():
        stored = parts[number].vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64))
        for row, value in zip(rows, (stored @ vector).tolist(), strict=True):
            out[(number, row)] = value
    return out


def fetch_rows(
    parts: Sequence[OpenPart], keys: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], dict[str, Any]]:
    """The chunk rows for (part number, row) keys, read once each."""
    wanted: dict[int, set[int]] = {}
    for number, row in keys:
        wanted.setdefault(number, set()).add(row)
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for number, ids in wanted.items():
        ordered = sorted(ids)
        for row, data in zip(ordered, parts[number].rows.rows(ordered), strict=True):
            rows[(number, row)] = data
    return rows
