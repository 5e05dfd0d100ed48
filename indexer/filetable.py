"""The file table: one row per file of the folder as the index last saw it.

It is what makes updates cheap: a file whose size and modification time match its row is not
read again; one whose time changed but whose SHA-256 matches is not re-chunked either. Files
that were skipped are kept too, so an unchanged bad file is not read again and its reason is
still reported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from indexer.errors import REBUILD_HINT, IndexCorruptError
from indexer.manifest import LEGACY_PART_ID, IndexManifest
from indexer.records import SkippedFile
from indexer.store import check_file, file_facts, fsync_path, new_id

_NOTE = pa.struct([("path", pa.string()), ("reason", pa.string()), ("failed", pa.bool_())])
FILE_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("mtime", pa.timestamp("us", tz="UTC")),
        ("sha256", pa.string()),
        ("status", pa.string()),  # "indexed", "skipped" or "failed"
        ("reason", pa.string()),
        ("chunks", pa.int32()),
        ("parts", pa.list_(pa.string())),
        ("notes", pa.list_(_NOTE)),
    ]
)


def mtime_us(seconds: float) -> int:
    """A modification time as whole microseconds, as the index stores it."""
    return round(seconds * 1_000_000)


@dataclass(frozen=True)
class FileEntry:
    """What the index knows about one file."""

    path: str
    size: int
    mtime_us: int
    sha256: str | None
    status: str = "indexed"
    reason: str | None = None
    chunks: int = 0
    parts: tuple[str, ...] = ()
    notes: tuple[SkippedFile, ...] = ()

    def same_stat(self, size: int, mtime: float) -> bool:
        """Whether the file has the size and modification time it had when indexed."""
        return self.size == size and self.mtime_us == mtime_us(mtime)

    def touched(self, mtime: float) -> FileEntry:
        """The entry for the same content with a new modification time."""
        return replace(self, mtime_us=mtime_us(mtime))

    def skipped_entry(self) -> SkippedFile | None:
        """The file as a report's skipped entry, if it was skipped."""
        if self.status == "indexed":
            return None
        return SkippedFile(self.path, self.reason or "skipped", failed=self.status == "failed")


def write_file_table(directory: Path, entries: list[FileEntry]) -> dict[str, Any]:
    """Write ``files-<id>.parquet`` (fsynced) and return its facts for the manifest."""
    entries = sorted(entries, key=lambda e: e.path)
    table = pa.table(
        {
            "path": [e.path for e in entries],
            "size": [e.size for e in entries],
            "mtime": [e.mtime_us for e in entries],
            "sha256": [e.sha256 for e in entries],
            "status": [e.status for e in entries],
            "reason": [e.reason for e in entries],
            "chunks": [e.chunks for e in entries],
            "parts": [list(e.parts) for e in entries],
            "notes": [[n.to_dict() for n in e.notes] for e in entries],
        },
        schema=FILE_SCHEMA,
    )
    name = f"files-{new_id()}.parquet"
    pq.write_table(table, directory / name)
    fsync_path(directory / name)
    return {"name": name, "rows": len(entries), **file_facts(directory / name)}


def read_file_table(directory: Path, manifest: IndexManifest) -> dict[str, FileEntry]:
    """The file table of the index's current version (for format 1, made from its chunk rows)."""
    if manifest.file_table is None:
        return _legacy_entries(directory, manifest)
    path = directory / str(manifest.file_table["name"])
    check_file(path, manifest.file_table)
    try:
        table = pq.read_table(path)
        rows = table.select(FILE_SCHEMA.names).cast(FILE_SCHEMA)
        mtimes = rows.column("mtime").cast(pa.int64()).to_pylist()
        data = rows.drop_columns(["mtime"]).to_pylist()
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise IndexCorruptError(f"{path} is not a readable file table; " + REBUILD_HINT) from exc
    entries = {}
    for row, mtime in zip(data, mtimes, strict=True):
        entries[row["path"]] = FileEntry(
            path=row["path"],
            size=row["size"],
            mtime_us=mtime,
            sha256=row["sha256"],
            status=row["status"],
            reason=row["reason"],
            chunks=row["chunks"],
            parts=tuple(row["parts"] or ()),
            notes=tuple(SkippedFile(n["path"], n["reason"], bool(n["failed"])) for n in row["notes"] or ()),
        )
    return entries


def _legacy_entries(directory: Path, manifest: IndexManifest) -> dict[str, FileEntry]:
    entries: dict[str, FileEntry] = {}
    for part in manifest.part_refs:
        table = pq.read_table(directory / part.chunks_name, columns=["path", "file_size", "file_mtime"])
        mtimes = table.column("file_mtime").cast(pa.int64()).to_pylist()
        paths = table.column("path").to_pylist()
        sizes = table.column("file_size").to_pylist()
        for path, size, mtime in zip(paths, sizes, mtimes, strict=True):
            entry = entries.get(path)
            if entry is None:
                entries[path] = FileEntry(path, size, mtime, None, chunks=1, parts=(LEGACY_PART_ID,))
            else:
                entries[path] = replace(entry, chunks=entry.chunks + 1)
    return entries
