"""The one shape a search returns, whatever the front end."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON_FIELDS = ("rank", "score", "path", "chunk", "start_line", "end_line", "text", "page", "record")


@dataclass(frozen=True)
class SearchResult:
    """One hit: a chunk of a document and how close it is to the query.

    Attributes:
        rank: 1 for the best hit.
        score: Cosine similarity between the query and the chunk, in [-1, 1].
        path: The document's path, relative to the indexed folder (POSIX).
        chunk: The chunk's ordinal within its document (0-based).
        start_line: First line of the chunk in the document (1-based).
        end_line: Last line of the chunk in the document (1-based, inclusive).
        text: The chunk's text.
        char_start: Offset of the chunk's first character in the extracted text.
        char_end: Offset just past the chunk's last character.
        page: The page number, for formats that have pages.
        record: The record's id, for a record of a record file (.jsonl, .parquet, ...).
    """

    rank: int
    score: float
    path: str
    chunk: int
    start_line: int
    end_line: int
    text: str
    char_start: int = 0
    char_end: int = 0
    page: int | None = None
    record: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields that ``--json`` and the HTTP API show."""
        return {name: getattr(self, name) for name in JSON_FIELDS}


def result_from_row(rank: int, score: float, row: dict[str, Any]) -> SearchResult:
    """Build a result from a chunks.parquet row."""
    return SearchResult(
        rank=rank,
        score=score,
        path=row["path"],
        chunk=int(row["chunk"]),
        start_line=int(row["start_line"]),
        end_line=int(row["end_line"]),
        text=row["text"],
        char_start=int(row["char_start"]),
        char_end=int(row["char_end"]),
        page=row.get("page"),
        record=row.get("record"),
    )
