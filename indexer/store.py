"""The on-disk format: ``chunks.parquet`` (row i is FAISS id i), ``index.faiss``, ``manifest.json``.

A build writes a complete new index into a temporary folder beside the target, fsyncs it, and
then moves it into place, so a reader never sees half an index.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexer.embedding import normalize_rows
from indexer.errors import (
    REBUILD_HINT,
    IndexCorruptError,
    IndexExistsError,
    IndexLockedError,
    IndexWriteError,
)
from indexer.manifest import CHUNKS_FILE, FAISS_FILE, STAGING_MARKER, IndexManifest, is_index_folder
from indexer.records import Chunk

CHUNK_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("chunk", pa.int32()),
        ("text", pa.string()),
        ("char_start", pa.int64()),
        ("char_end", pa.int64()),
        ("start_line", pa.int32()),
        ("end_line", pa.int32()),
        ("tokens", pa.int32()),
        ("page", pa.int32()),
        ("record", pa.string()),
        ("section", pa.string()),
        ("content_hash", pa.string()),
        ("file_size", pa.int64()),
        ("file_mtime", pa.timestamp("us", tz="UTC")),
    ]
)
FAISS_TYPE = "IndexFlatIP"


def _faiss() -> Any:
    import faiss

    return faiss


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _chunks_to_table(chunks: Sequence[Chunk]) -> pa.Table:
    columns = {
        "path": [c.path for c in chunks],
        "chunk": [c.ordinal for c in chunks],
        "text": [c.text for c in chunks],
        "char_start": [c.char_start for c in chunks],
        "char_end": [c.char_end for c in chunks],
        "start_line": [c.start_line for c in chunks],
        "end_line": [c.end_line for c in chunks],
        "tokens": [c.tokens for c in chunks],
        "page": [c.page for c in chunks],
        "record": [c.record for c in chunks],
        "section": [c.section for c in chunks],
        "content_hash": [c.content_hash for c in chunks],
        "file_size": [c.file_size for c in chunks],
        "file_mtime": [round(c.file_mtime * 1_000_000) for c in chunks],
    }
    return pa.table(columns, schema=CHUNK_SCHEMA)


_SAMPLE_BYTES = 1 << 16


def sample_digest(path: Path) -> str:
    """SHA-256 of a file's size, first and last 64 KiB: cheap to check on every open, and it tells
    apart files of equal size (a vector file swapped in from another index, say)."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(_SAMPLE_BYTES))
        if size > _SAMPLE_BYTES:
            handle.seek(max(_SAMPLE_BYTES, size - _SAMPLE_BYTES))
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()


class IndexLock:
    """One writer at a time per index: an exclusive lock on ``NAME.lock`` beside the index folder."""

    def __init__(self, target: Path) -> None:
        self.path = target.with_name(f"{target.name}.lock")
        self._handle: Any = None

    def __enter__(self) -> IndexLock:
        import fcntl

        try:
            self._handle = open(self.path, "a+b")
        except OSError as exc:
            raise IndexWriteError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            self._handle.close()
            raise IndexLockedError(
                f"another semindex process is writing {self.path.with_suffix('')}; wait for it to finish"
            ) from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock


class IndexWriter:
    """Writes a new index into a temporary folder and moves it to ``target`` on ``commit``."""

    def __init__(self, target: Path, dimension: int, row_group_size: int = 4096) -> None:
        self.target = target
        self.dimension = dimension
        self._row_group_size = row_group_size
        check_target(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        self.staging = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:12]}")
        self.staging.mkdir()
        (self.staging / STAGING_MARKER).touch()
        self._index = _faiss().IndexFlatIP(dimension)  # inner product on unit vectors is cosine
        self._parquet = pq.ParquetWriter(self.staging / CHUNKS_FILE, CHUNK_SCHEMA)
        self._pending: list[Chunk] = []
        self.count = 0

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Append chunks and their vectors; vectors are normalised again here, whatever made them."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if not chunks:
            return
        vectors = normalize_rows(vectors)
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, index has {self.dimension}")
        self._index.add(vectors)
        self._pending.extend(chunks)
        self.count += len(chunks)
        if len(self._pending) >= self._row_group_size:
            self._flush()

    def _flush(self) -> None:
        while self._pending:
            group, self._pending = (
                self._pending[: self._row_group_size],
                self._pending[self._row_group_size :],
            )
            self._parquet.write_table(_chunks_to_table(group), row_group_size=self._row_group_size)

    def commit(self, manifest: IndexManifest) -> Path:
        """Finish the files, write the manifest last, and move the index into place."""
        self._flush()
        self._parquet.close()
        faiss_path = self.staging / FAISS_FILE
        try:
            _faiss().write_index(self._index, str(faiss_path))
        except RuntimeError as exc:  # FAISS reports I/O failures (a full disk, say) this way
            raise OSError(f"cannot write {faiss_path}") from exc
        manifest.faiss = {"type": FAISS_TYPE, "metric": "inner_product", "ntotal": int(self._index.ntotal)}
        manifest.files = {
            name: {
                "bytes": (self.staging / name).stat().st_size,
                "sample_sha256": sample_digest(self.staging / name),
            }
            for name in (FAISS_FILE, CHUNKS_FILE)
        }
        for name in (FAISS_FILE, CHUNKS_FILE):
            _fsync_path(self.staging / name)
        manifest.save(self.staging)
        (self.staging / STAGING_MARKER).unlink()
        _fsync_path(self.staging)
        _swap_into_place(self.staging, self.target)
        return self.target

    def abort(self) -> None:
        """Throw away everything written so far."""
        with contextlib.suppress(Exception):  # already closed, or broken by the error that led here
            self._parquet.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def check_target(target: Path) -> None:
    """Refuse to replace anything but a semindex index: the folder may hold the user's files."""
    if target.exists() and not target.is_dir():
        raise IndexExistsError(f"{target} exists and is not a folder; choose another --index")
    if target.is_dir() and any(target.iterdir()) and not is_index_folder(target):
        raise IndexExistsError(
            f"{target} exists, is not empty and is not a semindex index; choose another --index"
        )


def _swap_into_place(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:12]}")
        os.replace(target, old)
    os.replace(staging, target)
    _fsync_path(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def clean_leftovers(target: Path) -> None:
    """Remove the temporary folders an interrupted build left beside ``target`` (call under the lock).

    Only folders semindex made are touched: ``NAME.tmp-<12 hex>`` holding the staging marker, and
    ``NAME.old-<12 hex>`` holding a semindex index (put back if a crash fell between the two
    renames of a swap).
    """
    if not target.parent.is_dir():
        return
    pattern = re.compile(re.escape(target.name) + r"\.(tmp|old)-[0-9a-f]{12}")
    for sibling in sorted(target.parent.iterdir()):
        match = pattern.fullmatch(sibling.name)
        if match is None or not sibling.is_dir() or sibling.is_symlink():
            continue
        if match.group(1) == "tmp" and (sibling / STAGING_MARKER).is_file():
            shutil.rmtree(sibling, ignore_errors=True)
        elif match.group(1) == "old" and is_index_folder(sibling):
            if target.exists():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                os.replace(sibling, target)


def check_files(directory: Path, manifest: IndexManifest) -> None:
    """Fail with a clear message if a file the manifest lists is missing or has the wrong size."""
    for name, facts in manifest.files.items():
        path = directory / name
        if not path.is_file():
            raise IndexCorruptError(f"{path} is missing; " + REBUILD_HINT)
        size = path.stat().st_size
        expected = facts.get("bytes")
        if expected is not None and size != expected:
            raise IndexCorruptError(
                f"{path} has {size} bytes, the manifest says {expected}: it is damaged; {REBUILD_HINT}"
            )
        digest = facts.get("sample_sha256")
        if digest is not None and sample_digest(path) != digest:
            raise IndexCorruptError(
                f"{path} does not match its checksum in the manifest: it is damaged or from another "
                f"index; {REBUILD_HINT}"
            )


def read_vectors(directory: Path, manifest: IndexManifest) -> Any:
    """Load ``index.faiss`` and check it against the manifest."""
    path = directory / FAISS_FILE
    try:
        index = _faiss().read_index(str(path))
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is not a readable FAISS index; " + REBUILD_HINT) from exc
    if index.metric_type != _faiss().METRIC_INNER_PRODUCT:
        raise IndexCorruptError(f"{path} is not an inner-product index; {REBUILD_HINT}")
    if index.d != manifest.dimension:
        raise IndexCorruptError(
            f"{path} holds {index.d}-dimensional vectors, the manifest says {manifest.dimension}; "
            + REBUILD_HINT
        )
    if index.ntotal != manifest.counts.get("chunks"):
        raise IndexCorruptError(
            f"{path} holds {index.ntotal} vectors, the manifest says {manifest.counts.get('chunks')} chunks; "
            + REBUILD_HINT
        )
    return index


class ChunkTable:
    """Reads chunk rows from ``chunks.parquet`` by row number, one row group at a time."""

    def __init__(self, directory: Path, cache_groups: int = 8) -> None:
        path = directory / CHUNKS_FILE
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise IndexCorruptError(f"{path} is not a readable Parquet file; " + REBUILD_HINT) from exc
        meta = self._file.metadata
        self.num_rows = meta.num_rows
        self._starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self._cache: OrderedDict[int, pa.Table] = OrderedDict()
        self._cache_groups = cache_groups

    def _group(self, number: int) -> pa.Table:
        table = self._cache.get(number)
        if table is None:
            try:
                table = self._file.read_row_group(number)
            except (OSError, pa.ArrowException) as exc:
                raise IndexCorruptError(f"cannot read chunk rows ({exc}); " + REBUILD_HINT) from exc
            self._cache[number] = table
            if len(self._cache) > self._cache_groups:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(number)
        return table

    def rows(self, row_ids: Sequence[int]) -> list[dict[str, Any]]:
        """The rows with the given numbers, in the order given."""
        out = []
        for row_id in row_ids:
            if not 0 <= row_id < self.num_rows:
                raise IndexCorruptError(f"row {row_id} is outside chunks.parquet; " + REBUILD_HINT)
            group = int(np.searchsorted(self._starts, row_id, side="right")) - 1
            table = self._group(group)
            out.append(table.slice(row_id - int(self._starts[group]), 1).to_pylist()[0])
        return out
