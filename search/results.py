"""The one shape a search returns, whatever the front end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON_FIELDS = (
    "rank",
    "score",
    "path",
    "chunk",
    "start_line",
    "end_line",
    "text",
    "page",
    "record",
    "mode",
    "cosine",
    "keyword_score",
    "dense_rank",
    "keyword_rank",
    "line",
    "snippet",
    "highlights",
    "duplicates",
)


@dataclass(frozen=True)
class SearchResult:
    """One hit: a chunk of a document and how close it is to the query.

    Attributes:
        rank: 1 for the best hit.
        score: What the ranking sorted by: the cosine similarity in ``dense`` mode (in [-1, 1]),
            the BM25 score in ``keyword`` mode, the fused score in ``hybrid`` mode.
        path: The document's path, relative to the indexed folder (POSIX).
        chunk: The chunk's ordinal within its document (0-based).
        start_line: First line of the chunk in the document (1-based).
        end_line: Last line of the chunk in the document (1-based, inclusive).
        text: The chunk's text.
        char_start: Offset of the chunk's first character in the extracted text.
        char_end: Offset just past the chunk's last character.
        page: The page number, for formats that have pages.
        record: The record's id, for a record of a record file (.jsonl, .parquet, ...).
        mode: The search mode that found it: ``hybrid``, ``dense`` or ``keyword``.
        cosine: Cosine similarity of the query and the chunk (None in keyword mode).
        keyword_score: The chunk's BM25 score for the query (None in dense mode).
        dense_rank: Its rank by cosine alone, if within the ranking read (None otherwise).
        keyword_rank: Its rank by BM25 alone, if within the ranking read (None otherwise).
        line: The line where ``snippet`` starts (for ``path:line`` links).
        snippet: The sentences of the chunk that best match the query.
        highlights: (start, end) offsets in ``snippet`` of the words matching query terms.
        duplicates: Other places holding exactly the same text (path, start_line, end_line, page).
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
    mode: str = "dense"
    cosine: float | None = None
    keyword_score: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None
    line: int = 0
    snippet: str = ""
    highlights: list[list[int]] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The fields that ``--json`` and the HTTP API show."""
        return {name: getattr(self, name) for name in JSON_FIELDS}


def result_from_row(rank: int, row: dict[str, Any], score: float, **facts: Any) -> SearchResult:
    """Build a result from a chunk row, its score and what the ranking says of it."""
    return SearchResult(
        rank=rank,
        score=score,
        **facts,
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
