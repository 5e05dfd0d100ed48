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
    shared: SharedIVF | None = None  # the parts of this part's IVF training, searched together


def open_parts(directory: Path, manifest: IndexManifest, mapped: bool = False) -> list[OpenPart]:
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
            keywords = KeywordPart.open(path, mmap=True)
            if keywords.num_rows != ref.rows:
                raise IndexCorruptError(
                    f"{path} has {keywords.num_rows} rows, not {ref.rows}; {REBUILD_HINT}"
                )
        ann, ann_type = None, "flat"
        problem = ann_problem(directory, ref)
        if ref.ann is not None and problem is None:
            try:
                ann, ann_type = (
                    _read_ann(directory, ref, manifest.dimension, mapped),
                    str(ref.ann.get("type")),
                )
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
    link_shared(parts)
    return parts


def _read_ann(directory: Path, ref: PartRef, dimension: int, mapped: bool = False) -> Any:
    """A part's ANN index, read into memory, or with ``mapped`` mapped from its file as the
    exact vectors are: a one-off query then reads only the lists it probes (two 100k-row IVF
    parts opened in 6 ms instead of 47 to 192 ms), but the first queries of a long-lived
    process wait on the pages they touch (26 ms a query at 1M chunks against 2 ms)."""
    import faiss

    assert ref.ann is not None
    path = directory / str(ref.ann["name"])
    flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if mapped else 0
    try:
        index = faiss.read_index(str(path), flags)
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

    shared = _shared_group(parts)
    searched = shared.numbers if shared is not None else set()

    def one(number: int) -> tuple[np.ndarray, np.ndarray] | None:
        if number in searched:
            return None
        allowed = masks[number] if masks is not None else None
        return _search_part(parts[number], vectors, k, allowed)

    rest = [number for number in range(len(parts)) if number not in searched]
    workers = _workers(len(rest))
    if workers > 1:  # FAISS releases the GIL: parts are searched side by side
        answers = list(_pool(workers).map(one, range(len(parts))))
    else:
        answers = [one(number) for number in range(len(parts))]
    candidates: list[list[Hit]] = [[] for _ in range(len(vectors))]
    if shared is not None:
        for query, found in enumerate(shared.search(parts, vectors, k, masks)):
            candidates[query].extend(found)
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


class SharedIVF:
    """The parts of one IVF training searched as one index (FAISS IndexShardsIVF): a query's
    nearest lists are found once, then each part scans those lists, all in one FAISS call. At
    1M chunks in 16 parts this took 0.6 ms a query against 1.6 ms for a call per part
    (bench/warm.py). Nothing is copied: the parts' own ANN indexes are the shards."""

    def __init__(self, parts: Sequence[OpenPart], numbers: list[int]) -> None:
        import faiss

        first = parts[numbers[0]]
        ivf = faiss.extract_index_ivf(first.ann)
        self.kind = first.ann_type
        self.nprobe = max(1, min(int((first.ann_params or {}).get("nprobe", ivf.nprobe)), ivf.nlist))
        self.members = [parts[n] for n in numbers]  # by identity: a search over other parts skips it
        self.numbers = set(numbers)
        self._numbers = np.asarray(numbers, dtype=np.int64)
        self._offsets = np.cumsum([0] + [parts[n].ann.ntotal for n in numbers]).astype(np.int64)
        self._quantiser = ivf.quantizer  # the first member's: every member has the same lists
        self._index = faiss.IndexShardsIVF(self._quantiser, ivf.nlist, False, True)
        for member in self.members:
            member.ann.nprobe = self.nprobe  # the shards must agree with the search's nprobe
            self._index.add_shard(member.ann)
        self._params = faiss.SearchParametersIVF()
        self._params.nprobe = self.nprobe

    def search(
        self,
        parts: Sequence[OpenPart],
        vectors: np.ndarray,
        k: int,
        masks: Sequence[np.ndarray | None] | None = None,
    ) -> list[list[Hit]]:
        """Each query's best ``k`` (cosine, part number, row) over the member parts (only the
        rows ``masks`` allow, if given)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if masks is not None or self.kind == "ivfpq":
            return self._each(vectors, k, masks)
        scores, ids = self._index.search(vectors, min(k, int(self._offsets[-1])), params=self._params)
        shard = np.clip(np.searchsorted(self._offsets, ids, side="right") - 1, 0, len(self.members) - 1)
        local, numbers = ids - self._offsets[shard], self._numbers[shard]
        return [
            [
                (float(s), int(n), int(r))
                for s, n, r, i in zip(scores[q], numbers[q], local[q], ids[q], strict=True)
                if i >= 0
            ]
            for q in range(len(vectors))
        ]

    def _each(
        self, vectors: np.ndarray, k: int, masks: Sequence[np.ndarray | None] | None
    ) -> list[list[Hit]]:
        """Member by member: for ``ivfpq`` (each part's ``k * RERANK`` best by code are
        re-scored with its exact vectors, as the build's recall check measures) with the
        nearest lists found once, and for a filter (FAISS takes no id selector with lists
        found beforehand)."""
        import faiss

        assigned = self._quantiser.search(vectors, self.nprobe) if masks is None else None
        found: list[list[Hit]] = [[] for _ in range(len(vectors))]
        for number, member in zip(self._numbers.tolist(), self.members, strict=True):
            allowed = masks[number] if masks is not None else None
            count = int(member.ann.ntotal) if allowed is None else int(allowed.sum())
            if count == 0:
                continue
            wanted = min(k * RERANK if self.kind == "ivfpq" else k, count)
            if assigned is not None:
                scores, ids = member.ann.search_preassigned(vectors, wanted, assigned[1], assigned[0])
            else:
                params = faiss.SearchParametersIVF()
                params.nprobe = self.nprobe
                if allowed is not None:
                    bits = np.packbits(allowed, bitorder="little")
                    params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
                scores, ids = member.ann.search(vectors, wanted, params=params)
            if self.kind == "ivfpq":
                scores, ids = rescore(member.vectors, vectors, ids, min(k, count))
            for q in range(len(vectors)):
                found[q].extend(
                    (float(s), number, int(i)) for s, i in zip(scores[q], ids[q], strict=True) if i >= 0
                )
        return [sorted(hits, key=lambda h: (-h[0], h[1], h[2]))[:k] for hits in found]


def link_shared(parts: Sequence[OpenPart]) -> None:
    """Group the parts that share one IVF training (two or more) into a SharedIVF."""
    numbers = [n for n, p in enumerate(parts) if _training(p) is not None]
    if len(numbers) < 2 or len({_training(parts[n]) for n in numbers}) != 1:
        return
    shared = SharedIVF(parts, numbers)
    for number in numbers:
        parts[number].shared = shared


def _shared_group(parts: Sequence[OpenPart]) -> SharedIVF | None:
    """The SharedIVF to search ``parts`` with: only when every one of its members is among
    them, in the same place, with its ANN index still in use."""
    first = next((p for p in parts if p.shared is not None), None)
    if first is None or first.shared is None:
        return None
    shared = first.shared
    for number, member in zip(shared._numbers.tolist(), shared.members, strict=True):
        if number >= len(parts) or parts[number] is not member or member.ann is None:
            return None
    return shared


def _search_part(
    part: OpenPart, vectors: np.ndarray, k: int, allowed: np.ndarray | None
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

    def read(number: int) -> list[tuple[tuple[int, int], dict[str, Any]]]:
        ordered = sorted(wanted[number])
        return [((number, r), d) for r, d in zip(ordered, parts[number].rows.rows(ordered), strict=True)]

    # Each part's rows are a Parquet read of their own (about 0.2 ms a row group, mostly in
    # Arrow, which releases the GIL): the hits of several parts are read side by side.
    workers = min(_workers(len(parts)), len(wanted))
    if workers > 1:
        answers = list(_pool(workers).map(read, list(wanted)))
    else:
        answers = [read(number) for number in wanted]
    return {key: data for answer in answers for key, data in answer}
