"""Record files (.jsonl, .json arrays, .parquet, .csv/.tsv): each record becomes its own document.

A BEIR ``corpus.jsonl`` indexes directly: the id comes from ``_id`` and the text from ``title``
and ``text`` unless other fields are named.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from indexer.records import Document, SkippedFile, SourceFile

RECORD_EXTENSIONS = frozenset({".jsonl", ".ndjson", ".json", ".parquet", ".csv", ".tsv"})


@dataclass(frozen=True)
class RecordFields:
    """Which field identifies a record and which hold its text."""

    id_field: str = "_id"
    text_fields: tuple[str, ...] = ("title", "text")


def looks_like_records(suffix: str, head: bytes, fields: RecordFields) -> bool:
    """Whether a file should be read as records when ``--records`` was not given.

    JSON Lines and JSON arrays of objects are records when their first object has the id field
    or a text field; Parquet always is. CSV and TSV are read as text unless asked.
    """
    if suffix == ".parquet":
        return True
    if suffix not in (".jsonl", ".ndjson", ".json"):
        return False
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if suffix == ".json":
        if not text.startswith("["):
            return False
        text = text[1:].lstrip()
    else:
        text = text.split("\n", 1)[0]
    try:
        record, _ = json.JSONDecoder().raw_decode(text)
    except (ValueError, RecursionError):
        return False
    wanted = {fields.id_field, *fields.text_fields}
    return isinstance(record, dict) and bool(wanted & set(record))


def _record_text(record: dict[str, Any], fields: Sequence[str]) -> str:
    parts = []
    for name in fields:
        value = record.get(name)
        if value is None:
            continue
        value = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        if value.strip():
            parts.append(value.strip())
    return "\n\n".join(parts)


def _document(
    source: SourceFile, record: Any, number: int, line: int | None, fields: RecordFields
) -> Document | SkippedFile:
    where = f"{source.path}:{line}" if line is not None else f"{source.path}#{number}"
    if not isinstance(record, dict):
        return SkippedFile(where, "record is not an object", failed=True)
    raw_id = record.get(fields.id_field)
    record_id = str(raw_id) if raw_id is not None and str(raw_id) != "" else str(number)
    text = _record_text(record, fields.text_fields)
    if not text:
        return SkippedFile(f"{source.path}#{record_id}", f"no text in fields {', '.join(fields.text_fields)}")
    return Document(source, text, format="record", record_id=record_id, line=line)


def iter_records(source: SourceFile, fields: RecordFields) -> Iterator[Document | SkippedFile]:
    """The documents of a record file, streamed (a record file may be far larger than memory)."""
    suffix = source.absolute.suffix.lower()
    if suffix == ".parquet":
        found = _parquet_records(source, fields)
    elif suffix == ".json":
        found = _json_array_records(source, fields)
    elif suffix in (".csv", ".tsv"):
        found = _csv_records(source, fields, "\t" if suffix == ".tsv" else ",")
    else:
        found = _jsonl_records(source, fields)
    count = 0
    for item in found:
        count += 1
        yield item
    if count == 0:
        yield SkippedFile(source.path, "no records")


def _jsonl_records(source: SourceFile, fields: RecordFields) -> Iterator[Document | SkippedFile]:
    with open(source.absolute, encoding="utf-8-sig", errors="replace") as handle:
        number = 0
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            number += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield SkippedFile(f"{source.path}:{line_number}", f"invalid JSON: {exc.msg}", failed=True)
                continue
            except RecursionError:
                yield SkippedFile(f"{source.path}:{line_number}", "JSON nested too deeply", failed=True)
                continue
            yield _document(source, record, number, line_number, fields)


def _json_array_records(source: SourceFile, fields: RecordFields) -> Iterator[Document | SkippedFile]:
    try:
        data = json.loads(source.absolute.read_text(encoding="utf-8-sig", errors="replace"))
    except ValueError as exc:
        yield SkippedFile(source.path, f"invalid JSON: {exc}", failed=True)
        return
    if not isinstance(data, list):
        yield SkippedFile(source.path, "JSON records must be an array of objects", failed=True)
        return
    for number, record in enumerate(data, start=1):
        yield _document(source, record, number, None, fields)


def _csv_records(
    source: SourceFile, fields: RecordFields, delimiter: str
) -> Iterator[Document | SkippedFile]:
    csv.field_size_limit(1 << 30)
    with open(source.absolute, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        for number, row in enumerate(reader, start=1):
            yield _document(source, row, number, reader.line_num, fields)


def _parquet_records(source: SourceFile, fields: RecordFields) -> Iterator[Document | SkippedFile]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(source.absolute)
        names = set(parquet.schema_arrow.names)
        columns = [c for c in (fields.id_field, *fields.text_fields) if c in names]
        if not set(fields.text_fields) & names:
            yield SkippedFile(source.path, f"no column named {', '.join(fields.text_fields)}")
            return
        number = 0
        for batch in parquet.iter_batches(batch_size=1024, columns=columns):
            for record in batch.to_pylist():
                number += 1
                yield _document(source, record, number, None, fields)
    except (OSError, pa.ArrowException) as exc:
        yield SkippedFile(source.path, f"unreadable Parquet: {exc}", failed=True)


def read_head(source: SourceFile, size: int = 1 << 20) -> bytes:
    """The first bytes of a file (a whole first line for JSON Lines, up to 16 MiB), for sniffing."""
    with open(source.absolute, "rb") as handle:
        if source.absolute.suffix.lower() in (".jsonl", ".ndjson"):
            return handle.readline(16 << 20)
        return handle.read(size)
