"""The on-disk format: parts (a Parquet file and a FAISS file each), a file table and a manifest.

Part files are written once under fresh names and never changed. A write makes the new files,
fsyncs them, and then replaces ``manifest.json`` in one rename: that rename is the switch from
one version to the next, so a reader sees the old version or the new one, whole. Files the new
manifest no longer lists are deleted afterwards (readers that opened them keep their handles).
See docs/format.md.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import re
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
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
from indexer.keywords import Analyzer, PostingsBuilder, TermBatch, keyword_text
from indexer.manifest import (
    ANN_DIR,
    CHUNKS_DIR,
    KEYWORDS_DIR,
    LOCK_FILE,
    MANIFEST_FILE,
    VECTORS_DIR,
    IndexManifest,
    PartRef,
    is_index_folder,
)
from indexer.onnx_model import QUERY_MODEL_DIR, query_model_files
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
DEFAULT_PART_ROWS = 65_536

# Names semindex writes inside an index folder; nothing else there is ever deleted.
_OUR_TOP = re.compile(
    r"manifest\.json|manifest\.json\.tmp-[0-9a-f]{12}|\.manifest\.json\.tmp|semindex\.lock|chunks|vectors|keywords|"
    r"files-[0-9a-f]{16}\.parquet|index\.faiss|chunks\.parquet|query-model|ann|build-journal\.jsonl"
)
_OUR_QUERY_MODEL = re.compile(r"(model-[0-9a-f]{16}\.onnx|tokenizer-[0-9a-f]{16}\.json)(\.tmp)?")
_OUR_CHUNKS = re.compile(r"part-[0-9a-f]{16}\.parquet")
_OUR_VECTORS = re.compile(r"part-[0-9a-f]{16}\.faiss")
_OUR_KEYWORDS = re.compile(r"part-[0-9a-f]{16}\.npz")


def _faiss() -> Any:
    import faiss

    return faiss


def crash_point(name: str) -> None:
    """Die here, as if killed, when ``SEMINDEX_CRASH_AT`` names this point (crash-safety tests)."""
    if os.environ.get("SEMINDEX_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def fsync_path(path: Path) -> None:
    """Flush a file or a folder's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_id() -> str:
    """A fresh random part or table id (16 hex digits)."""
    return os.urandom(8).hex()


def chunks_to_table(chunks: Sequence[Chunk]) -> pa.Table:
    """Chunks as rows of the Parquet schema."""
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


def file_sha256(path: Path) -> str:
    """SHA-256 of a whole file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_facts(path: Path) -> dict[str, Any]:
    """What the manifest records about a file it lists: size, sampled and full checksums."""
    return {"bytes": path.stat().st_size, "sample_sha256": sample_digest(path), "sha256": file_sha256(path)}


class IndexLock:
    """One writer at a time per index: an exclusive lock on ``semindex.lock`` in the index folder.

    With ``wait`` the lock is awaited (``on_wait`` is called once, when it is busy); otherwise a
    busy lock fails at once. Readers never take it.
    """

    def __init__(self, target: Path, wait: bool = False, on_wait: Callable[[], None] | None = None) -> None:
        self.target = target
        self.path = target / LOCK_FILE
        self.wait = wait
        self.on_wait = on_wait
        self._handle: Any = None

    def __enter__(self) -> IndexLock:
        import fcntl

        try:
            self.target.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a+b")
        except OSError as exc:
            raise IndexWriteError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        told = False
        while True:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError as exc:
                if not self.wait:
                    self._handle.close()
                    raise IndexLockedError(
                        f"another semindex process is writing {self.target}; wait for it to finish "
                        "or add --wait"
                    ) from exc
                if not told and self.on_wait is not None:
                    self.on_wait()
                told = True
                time.sleep(0.2)

    def __exit__(self, *exc_info: object) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock


def check_target(target: Path) -> None:
    """Refuse to write into anything but a semindex index: the folder may hold the user's files."""
    if target.exists() and not target.is_dir():
        raise IndexExistsError(f"{target} exists and is not a folder; choose another --index")
    if not target.is_dir() or is_index_folder(target):
        return
    names = [p.name for p in target.iterdir()]
    # A folder semindex began writing holds its lock file and nothing but semindex's own names
    # (its manifest may be damaged); anything else may be the user's, and is never written to.
    if names and (LOCK_FILE not in names or any(not _OUR_TOP.fullmatch(n) for n in names)):
        raise IndexExistsError(
            f"{target} exists, is not empty and is not a semindex index; choose another --index"
        )


@dataclass
class PartWriter:
    """Writes chunk rows and their vectors into new parts of at most ``part_rows`` rows each.

    Nothing is visible to readers until a manifest that lists the parts is committed; ``abort``
    deletes what was written.
    """

    directory: Path
    dimension: int
    part_rows: int = DEFAULT_PART_ROWS
    row_group_size: int = 256
    parts: list[PartRef] = field(default_factory=list)
    paths_in_part: dict[str, set[str]] = field(default_factory=dict)
    count: int = 0
    on_part: Callable[[PartRef], None] | None = None  # told of each part once it is on disk

    def __post_init__(self) -> None:
        for folder in (CHUNKS_DIR, VECTORS_DIR, KEYWORDS_DIR):
            (self.directory / folder).mkdir(parents=True, exist_ok=True)
        self._analyzer = Analyzer()
        self._terms = PostingsBuilder()
        self._id: str | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._index: Any = None
        self._rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._written: list[Path] = []

    def add(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        """Append chunks and their vectors; vectors are normalised again here, whatever made them."""
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        if chunks:
            self.add_table(chunks_to_table(chunks), vectors)

    def add_table(self, table: pa.Table, vectors: np.ndarray, terms: TermBatch | None = None) -> None:
        """Append rows already in the Parquet schema (kept rows of an older part) and their vectors.

        ``terms`` are the rows' keyword postings if known; otherwise the rows' text is analyzed.
        """
        if table.num_rows != len(vectors):
            raise ValueError(f"{table.num_rows} rows but {len(vectors)} vectors")
        if table.num_rows == 0:
            return
        if terms is None:
            sections = table.column("section").to_pylist()
            texts = table.column("text").to_pylist()
            terms = TermBatch.from_texts(
                self._analyzer, (keyword_text(s, t) for s, t in zip(sections, texts, strict=True))
            )
        vectors = normalize_rows(np.asarray(vectors, dtype=np.float32))
        if vectors.shape[1] != self.dimension:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, index has {self.dimension}")
        table = table.select(CHUNK_SCHEMA.names).cast(CHUNK_SCHEMA)
        start = 0
        while start < table.num_rows:
            if self._id is None:
                self._open_part()
            room = self.part_rows - self._rows
            piece = table.slice(start, room)
            self._index.add(np.ascontiguousarray(vectors[start : start + piece.num_rows]))
            self._pending.append(piece)
            self._terms.add(terms.slice(start, start + piece.num_rows))
            self._pending_rows += piece.num_rows
            self._rows += piece.num_rows
            assert self._id is not None
            self.paths_in_part[self._id].update(piece.column("path").to_pylist())
            self.count += piece.num_rows
            start += piece.num_rows
            if self._pending_rows >= self.row_group_size:
                self._flush(final=False)
            if self._rows >= self.part_rows:
                self._close_part()

    def _open_part(self) -> None:
        self._id = new_id()
        self.paths_in_part[self._id] = set()
        path = self.directory / CHUNKS_DIR / f"part-{self._id}.parquet"
        self._written.append(path)
        self._parquet = pq.ParquetWriter(path, CHUNK_SCHEMA, **CHUNK_ENCODING)
        self._index = _faiss().IndexFlatIP(self.dimension)  # inner product on unit vectors is cosine
        self._rows = 0

    def _flush(self, final: bool) -> None:
        if not self._pending:
            return
        assert self._parquet is not None
        table = pa.concat_tables(self._pending)
        whole = (table.num_rows // self.row_group_size) * self.row_group_size
        cut = table.num_rows if final else whole
        if cut:
            self._parquet.write_table(table.slice(0, cut), row_group_size=self.row_group_size)
        rest = table.slice(cut)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def _close_part(self) -> None:
        assert self._id is not None and self._parquet is not None
        self._flush(final=True)
        self._parquet.close()
        chunks_path = self.directory / CHUNKS_DIR / f"part-{self._id}.parquet"
        vectors_path = self.directory / VECTORS_DIR / f"part-{self._id}.faiss"
        keywords_path = self.directory / KEYWORDS_DIR / f"part-{self._id}.npz"
        self._written += [vectors_path, keywords_path]
        try:
            _faiss().write_index(self._index, str(vectors_path))
        except RuntimeError as exc:  # FAISS reports I/O failures (a full disk, say) this way
            raise OSError(f"cannot write {vectors_path}") from exc
        keywords = self._terms.build()
        keywords.save(keywords_path)
        for path in (chunks_path, vectors_path, keywords_path):
            fsync_path(path)
        files = {
            "chunks": file_facts(chunks_path),
            "vectors": file_facts(vectors_path),
            "keywords": file_facts(keywords_path),
        }
        self.parts.append(PartRef(self._id, self._rows, files, terms=int(keywords.lengths.sum())))
        crash_point("part-written")
        if self.on_part is not None:
            for folder in (CHUNKS_DIR, VECTORS_DIR, KEYWORDS_DIR):
                fsync_path(self.directory / folder)
            self.on_part(self.parts[-1])
        self._id, self._parquet, self._index, self._rows = None, None, None, 0
        self._terms = PostingsBuilder()

    def finish(self) -> list[PartRef]:
        """Close the last part; return every part written."""
        if self._id is not None:
            self._close_part()
        for folder in (CHUNKS_DIR, VECTORS_DIR, KEYWORDS_DIR):
            fsync_path(self.directory / folder)
        return self.parts

    def abort(self, keep_finished: bool = False) -> None:
        """Delete everything written so far (with ``keep_finished``, all but the finished parts,
        which an interrupted build's journal lists for ``--resume``)."""
        with contextlib.suppress(Exception):  # already closed, or broken by the error that led here
            if self._parquet is not None:
                self._parquet.close()
        finished = {name for p in self.parts for name in (p.chunks_name, p.vectors_name, p.keywords_name)}
        for path in self._written:
            if keep_finished and f"{path.parent.name}/{path.name}" in finished:
                continue
            with contextlib.suppress(OSError):
                path.unlink()


def commit(directory: Path, manifest: IndexManifest) -> None:
    """Make ``manifest`` the index's current version, then delete the files no version lists."""
    fsync_path(directory)
    crash_point("before-manifest")
    manifest.format_version = 2
    manifest.files = None
    manifest.save(directory, before_switch=lambda: crash_point("before-switch"))
    crash_point("after-switch")
    collect_garbage(directory, manifest)


def _listed(manifest: IndexManifest | None) -> set[str]:
    if manifest is None:
        return set()
    names = {MANIFEST_FILE, LOCK_FILE, CHUNKS_DIR, VECTORS_DIR, KEYWORDS_DIR}
    for part in manifest.part_refs:
        names.update((part.chunks_name, part.vectors_name, part.keywords_name))
        if part.ann is not None:
            names.add(str(part.ann["name"]))
    if manifest.file_table:
        names.add(str(manifest.file_table["name"]))
    names.update(query_model_files(manifest.query_model))
    return names


def garbage(
    directory: Path, manifest: IndexManifest | None, also_keep: Iterable[str] = ()
) -> list[tuple[str, Path]]:
    """semindex's own files in ``directory`` that ``manifest`` does not list, by name.

    These are the parts and tables of replaced versions and the leftovers of interrupted writes
    (but those named in ``also_keep``). Files of other names are never included.
    """
    keep = _listed(manifest) | set(also_keep)
    candidates: list[tuple[str, Path]] = []
    if directory.is_dir():
        candidates += [(p.name, p) for p in directory.iterdir() if _OUR_TOP.fullmatch(p.name)]
    for folder, pattern in (
        (CHUNKS_DIR, _OUR_CHUNKS),
        (VECTORS_DIR, _OUR_VECTORS),
        (KEYWORDS_DIR, _OUR_KEYWORDS),
        (QUERY_MODEL_DIR, _OUR_QUERY_MODEL),
        (ANN_DIR, _OUR_VECTORS),
    ):
        parts = directory / folder
        if parts.is_dir() and not parts.is_symlink():
            candidates += [(f"{folder}/{p.name}", p) for p in parts.iterdir() if pattern.fullmatch(p.name)]
    return sorted((name, path) for name, path in candidates if name not in keep and not path.is_dir())


def collect_garbage(
    directory: Path, manifest: IndexManifest | None, also_keep: Iterable[str] = ()
) -> list[str]:
    """Delete the files ``garbage`` names (call under the lock); return their names."""
    removed = []
    for name, path in garbage(directory, manifest, also_keep):
        with contextlib.suppress(OSError):
            path.unlink()
            removed.append(name)
        crash_point("collecting")
    for folder in (QUERY_MODEL_DIR, ANN_DIR):  # optional folders: not kept once empty
        path = directory / folder
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            with contextlib.suppress(OSError):
                path.rmdir()
    return removed


def remove_index_folder(directory: Path) -> None:
    """Delete an index folder that holds nothing but semindex's own files."""
    collect_garbage(directory, None)
    for name in (LOCK_FILE, CHUNKS_DIR, VECTORS_DIR, KEYWORDS_DIR, QUERY_MODEL_DIR, ANN_DIR):
        with contextlib.suppress(OSError):
            path = directory / name
            path.rmdir() if path.is_dir() else path.unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()  # only if nothing else is left in it


def check_part_files(directory: Path, part: PartRef, full: bool = False) -> None:
    """Fail with a clear message if a part's file is missing, of the wrong size or checksum."""
    for kind, name in (
        ("chunks", part.chunks_name),
        ("vectors", part.vectors_name),
        ("keywords", part.keywords_name),
    ):
        if kind in part.files or kind != "keywords":
            check_file(directory / name, part.files.get(kind, {}), full)


def ann_problem(directory: Path, part: PartRef, full: bool = False) -> str | None:
    """What is wrong with a part's ANN file (None: nothing, or it has none). The ANN file only
    speeds search up: a bad one is searched around (exact vectors) and built again."""
    if part.ann is None:
        return None
    if part.ann.get("type") not in ("hnsw", "ivf", "ivfpq"):
        return f"part {part.id} names an ANN file of unknown type {part.ann.get('type')!r}"
    try:
        check_file(directory / str(part.ann["name"]), part.ann, full)
    except IndexCorruptError as exc:
        return str(exc).split("; rebuild", 1)[0]
    return None


def check_file(path: Path, facts: dict[str, Any], full: bool = False) -> None:
    """Compare one file against what the manifest says of it (``full``: its whole SHA-256 too)."""
    if not path.is_file():
        raise IndexCorruptError(f"{path} is missing; " + REBUILD_HINT)
    size = path.stat().st_size
    expected = facts.get("bytes")
    if expected is not None and size != expected:
        raise IndexCorruptError(
            f"{path} has {size} bytes, the manifest says {expected}: it is damaged; {REBUILD_HINT}"
        )
    digest = facts.get("sample_sha256")
    try:
        mismatch = digest is not None and sample_digest(path) != digest
        if full and not mismatch and facts.get("sha256"):
            mismatch = file_sha256(path) != facts["sha256"]
    except OSError as exc:
        raise IndexCorruptError(
            f"cannot read {path} ({exc.strerror or exc}); check its permissions, or " + REBUILD_HINT
        ) from exc
    if mismatch:
        raise IndexCorruptError(
            f"{path} does not match its checksum in the manifest: it is damaged or from another "
            f"index; {REBUILD_HINT}"
        )


def read_vectors(directory: Path, manifest: IndexManifest, part: PartRef, mmap: bool = False) -> Any:
    """Load a part's FAISS file and check it against the manifest.

    ``mmap`` maps the stored vectors instead of copying them (a cold query then starts without
    reading every vector first). Files are never changed once written, and their size has been
    checked against the manifest, so the mapping stays valid, even after a newer version deletes it.
    """
    path = directory / part.vectors_name
    faiss = _faiss()
    flags = getattr(faiss, "IO_FLAG_MMAP_IFC", 0) if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexCorruptError(f"{path} is not a readable FAISS index; " + REBUILD_HINT) from exc
    if index.metric_type != _faiss().METRIC_INNER_PRODUCT:
        raise IndexCorruptError(f"{path} is not an inner-product index; {REBUILD_HINT}")
    if index.d != manifest.dimension:
        raise IndexCorruptError(
            f"{path} holds {index.d}-dimensional vectors, the manifest says {manifest.dimension}; "
            + REBUILD_HINT
        )
    if index.ntotal != part.rows:
        raise IndexCorruptError(
            f"{path} holds {index.ntotal} vectors, the manifest says {part.rows}; " + REBUILD_HINT
        )
    return index


def all_vectors(index: Any) -> np.ndarray:
    """Every vector of a flat FAISS index, in id order."""
    if index.ntotal == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.asarray(index.reconstruct_n(0, index.ntotal), dtype=np.float32)


# A hit reads its row group whole; LZ4 decodes faster than Parquet's usual Snappy at the same
# size, and the text column (unique values) gains nothing from a dictionary. A 256-row group of
# SciFact chunks read in 0.38 to 0.40 ms instead of 0.67 (files 0.3% larger).
CHUNK_ENCODING: dict[str, Any] = {
    "compression": "lz4_raw",
    "use_dictionary": [name for name in CHUNK_SCHEMA.names if name != "text"],
}

_IDENTITY = ("path", "record", "content_hash")
# Row groups of chunk rows kept in memory per part: a server answering many queries over a
# small index reads each group once; a large one keeps its busiest groups (SciFact, 9.8k
# chunks in 39 groups, fits whole; a hybrid query read 10 uncached groups, 11 ms, with 8).
ROW_CACHE_BYTES = 32 << 20
_ROW_OVERHEAD = 600  # bytes a converted row takes besides its text (14 Python values and a dict)
IDENTITY_GROUPS = 4096  # row groups whose identity columns stay cached (a few hundred bytes a row)


class ChunkTable:
    """Reads chunk rows of one part by row number, one row group at a time.

    The file stays open, so rows can still be read after a newer version deleted it. Safe
    from many threads: Arrow's Parquet reader is not, so reads and the caches take a lock.
    """

    def __init__(self, path: Path, cache_bytes: int = ROW_CACHE_BYTES) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(pa.OSFile(str(path)))
        except (OSError, pa.ArrowException) as exc:
            raise IndexCorruptError(f"{path} is not a readable Parquet file; " + REBUILD_HINT) from exc
        meta = self._file.metadata
        self.num_rows = meta.num_rows
        self._starts = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        self._start_list = [int(v) for v in self._starts]
        self._cache: OrderedDict[int, pa.Table] = OrderedDict()  # row groups, as read
        self._cache_bytes = cache_bytes
        self._cached_bytes = 0
        # Rows already converted to Python, by row number: a server's repeated hits cost nothing.
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._row_bytes = 0
        self._identities: OrderedDict[int, tuple[list[Any], ...]] = OrderedDict()
        self._lock = threading.RLock()

    def _group(self, number: int) -> pa.Table:
        """A row group (read once, then cached)."""
        with self._lock:
            table = self._cache.get(number)
            if table is not None:
                self._cache.move_to_end(number)
                return table
            try:
                table = self._file.read_row_group(number, use_threads=False)  # 2x faster when small
            except (OSError, pa.ArrowException) as exc:
                raise IndexCorruptError(
                    f"cannot read chunk rows of {self.path} ({exc}); " + REBUILD_HINT
                ) from exc
            self._keep(number, table)
            return table

    def _keep(self, number: int, table: pa.Table, protect: int = 1) -> None:
        """Cache a row group, dropping the least recently used beyond the byte budget (never
        the ``protect`` newest: the groups the read in progress needs)."""
        self._cache[number] = table
        # get_total_buffer_size: nbytes walks the dictionary columns (0.04 ms a group)
        self._cached_bytes += table.get_total_buffer_size()
        while self._cached_bytes > self._cache_bytes and len(self._cache) > protect:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.get_total_buffer_size()

    def _row(self, row_id: int, group: int) -> dict[str, Any]:
        """One row as Python values: converted once (only that row: converting a whole group
        for one hit cost a 1M-chunk query 8 ms), then kept while the budget allows."""
        row = self._rows.get(row_id)
        if row is not None:
            self._rows.move_to_end(row_id)
            return row
        try:
            row = self._group(group).slice(row_id - self._start_list[group], 1).to_pylist()[0]
        except (pa.ArrowException, UnicodeDecodeError, ValueError) as exc:  # damaged inside
            raise IndexCorruptError(
                f"cannot read row {row_id} of {self.path} ({exc}); " + REBUILD_HINT
            ) from exc
        self._rows[row_id] = row
        self._row_bytes += _ROW_OVERHEAD + len(row.get("text") or "")
        while self._row_bytes > self._cache_bytes and len(self._rows) > 1:
            _, dropped = self._rows.popitem(last=False)
            self._row_bytes -= _ROW_OVERHEAD + len(dropped.get("text") or "")
        return row

    def identity(self, row_id: int) -> tuple[str, str | None, str]:
        """A row's (path, record, content_hash), read with those columns of its row group only:
        grouping and duplicate checks look at a few hundred candidates, never at every row."""
        if not 0 <= row_id < self.num_rows:
            raise IndexCorruptError(f"row {row_id} is outside {self.path}; " + REBUILD_HINT)
        group = self._group_of(row_id)
        with self._lock:
            row = self._rows.get(row_id)  # a hit read whole already (Index reads its top hits first)
            if row is not None:
                return row["path"], row["record"], row["content_hash"]
            columns = self._identity_columns(group)
        offset = row_id - self._start_list[group]
        return columns[0][offset], columns[1][offset], columns[2][offset]

    def _identity_columns(self, group: int) -> tuple[list[Any], ...]:
        columns = self._identities.get(group)
        if columns is None:
            try:
                table = self._file.read_row_group(group, columns=list(_IDENTITY), use_threads=False)
            except (OSError, pa.ArrowException) as exc:
                raise IndexCorruptError(
                    f"cannot read chunk rows of {self.path} ({exc}); " + REBUILD_HINT
                ) from exc
            columns = tuple(table.column(name).to_pylist() for name in _IDENTITY)
            self._identities[group] = columns
            if len(self._identities) > IDENTITY_GROUPS:
                self._identities.popitem(last=False)
        return columns

    def column(self, name: str) -> pa.ChunkedArray:
        """One whole column, read through the open file."""
        try:
            with self._lock:
                return self._file.read(columns=[name]).column(name)
        except (OSError, KeyError, pa.ArrowException) as exc:
            raise IndexCorruptError(
                f"cannot read column {name} of {self.path} ({exc}); " + REBUILD_HINT
            ) from exc

    def _group_of(self, row_id: int) -> int:
        if not 0 <= row_id < self.num_rows:
            raise IndexCorruptError(f"row {row_id} is outside {self.path}; " + REBUILD_HINT)
        return bisect.bisect_right(self._start_list, row_id) - 1

    def rows(self, row_ids: Iterable[int]) -> list[dict[str, Any]]:
        """The rows with the given numbers, in the order given (row groups not cached yet are
        read in one call)."""
        wanted = list(row_ids)
        groups = [self._group_of(r) for r in wanted]
        with self._lock:
            return self._read_rows(wanted, groups)

    def _read_rows(self, wanted: list[int], groups: list[int]) -> list[dict[str, Any]]:
        missing = sorted(
            {g for r, g in zip(wanted, groups, strict=True) if r not in self._rows and g not in self._cache}
        )
        if len(missing) > 1:
            try:
                table = self._file.read_row_groups(missing, use_threads=False)
            except (OSError, pa.ArrowException) as exc:
                raise IndexCorruptError(
                    f"cannot read chunk rows of {self.path} ({exc}); " + REBUILD_HINT
                ) from exc
            offset = 0
            for number in missing:
                size = int(self._starts[number + 1] - self._starts[number])
                self._keep(number, table.slice(offset, size), protect=len(missing))
                offset += size
        return [dict(self._row(row_id, group)) for row_id, group in zip(wanted, groups, strict=True)]
