"""Plain records that travel between the pipeline's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SourceFile:
    """A file found by the walk: where it is and what the filesystem says about it."""

    path: str  # POSIX, relative to the indexed root
    absolute: Path
    size: int
    mtime: float


@dataclass(frozen=True)
class SkippedFile:
    """A file the build did not index, and why."""

    path: str
    reason: str
    failed: bool = False  # True when the file should have been readable (an error, not a choice)

    def to_dict(self) -> dict[str, object]:
        """Return the entry as JSON-ready data."""
        return {"path": self.path, "reason": self.reason, "failed": self.failed}


@dataclass(frozen=True)
class Document:
    """The text extracted from one source file.

    ``pages`` marks where each page lies in ``text`` as (page number, start, end), for formats
    with pages; ``notes`` names parts that could not be read (a page without a text layer).
    """

    source: SourceFile
    text: str
    encoding: str = "utf-8"
    format: str = "text"
    title: str | None = None
    pages: tuple[tuple[int, int, int], ...] | None = None
    notes: tuple[SkippedFile, ...] = ()
    record_id: str | None = None  # for one record of a record file (.jsonl, .parquet, ...)
    line: int | None = None  # the record's line in its file, where the format has lines


@dataclass(frozen=True)
class Chunk:
    """One piece of a document that fits the model's input; one Parquet row and one vector."""

    path: str
    ordinal: int
    text: str
    char_start: int
    char_end: int
    start_line: int
    end_line: int
    content_hash: str
    file_size: int
    file_mtime: float
    tokens: int = 0
    page: int | None = None
    record: str | None = None
    section: str | None = None  # headings in effect where the chunk starts ("Guide > Install")

    @property
    def embed_text(self) -> str:
        """What the model reads: the section's headings, then the chunk's own text."""
        return f"{self.section}\n\n{self.text}" if self.section else self.text


@dataclass
class BuildReport:
    """What a build did: counts, skipped files and timings."""

    index_dir: Path
    files_indexed: int = 0
    chunks: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0
    embed_seconds: float = 0.0
    tokens: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    updated: bool = False  # an existing index was brought up to date (not built from scratch)
    written: bool = True  # False when nothing had changed, so no new version was written
    version: int = 0  # the index's version after the build
    emptied: bool = False  # an update found no indexable files left: the index is now empty
    engine: str = "local"  # "local" or "ray": where files were read, chunked and embedded
    parts_resumed: int = 0  # parts of an interrupted build whose vectors were reused (--resume)

    @property
    def pipeline_seconds(self) -> float:
        """Time spent walking, reading, chunking, embedding and writing (model loading excluded)."""
        return max(0.0, self.seconds - self.model_seconds)

    def to_dict(self) -> dict[str, object]:
        """Return the report as JSON-ready data."""
        return {
            "index": str(self.index_dir),
            "files_indexed": self.files_indexed,
            "chunks": self.chunks,
            "tokens": self.tokens,
            "files_added": self.files_added,
            "files_updated": self.files_updated,
            "files_unchanged": self.files_unchanged,
            "files_removed": self.files_removed,
            "chunks_embedded": self.chunks_embedded,
            "chunks_reused": self.chunks_reused,
            "updated": self.updated,
            "written": self.written,
            "version": self.version,
            "emptied": self.emptied,
            "engine": self.engine,
            "parts_resumed": self.parts_resumed,
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "chunks_per_second": round(self.chunks / self.pipeline_seconds, 2)
            if self.pipeline_seconds
            else None,
            "failed": sum(s.failed for s in self.skipped),
            "skipped": [s.to_dict() for s in self.skipped],
        }
