"""``semindex verify``: the full check of an index, every byte of every file it lists.

Opening an index checks sizes and sampled checksums, which is cheap; this reads everything:
whole-file SHA-256, every Parquet row group, every vector (finite, unit length), and that the
manifest, the parts and the file table agree with one another.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from indexer.errors import SemindexError
from indexer.filetable import read_file_table
from indexer.keywords import KeywordPart
from indexer.manifest import IndexManifest, PartRef
from indexer.onnx_model import check_query_model, query_model_files
from indexer.store import CHUNK_SCHEMA, all_vectors, ann_problem, check_part_files, garbage, read_vectors


@dataclass
class VerifyReport:
    """What ``verify_index`` found."""

    index_dir: Path
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parts: int = 0
    chunks: int = 0
    files: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        """Whether the index passed every check."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "index": str(self.index_dir),
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "parts": self.parts,
            "chunks": self.chunks,
            "files": self.files,
            "bytes_read": self.bytes_read,
        }


def verify_index(directory: Path) -> VerifyReport:
    """Check every file of the index at ``directory``; problems are collected, not raised.

    Raises:
        IndexNotFoundError: There is no index at ``directory``.
    """
    report = VerifyReport(directory)
    try:
        manifest = IndexManifest.load(directory)
    except SemindexError as exc:
        if "no index at" in str(exc) or "not a semindex index" in str(exc):
            raise
        report.problems.append(str(exc))
        return report
    paths_in_parts: dict[str, Counter[str]] = {}
    for part in manifest.part_refs:
        report.parts += 1
        try:
            paths_in_parts[part.id] = _check_part(directory, manifest, part, report)
        except SemindexError as exc:
            report.problems.append(str(exc))
    _check_file_table(directory, manifest, paths_in_parts, report)
    report.problems.extend(check_query_model(directory, manifest.query_model))
    query = manifest.query_model
    if query_model_files(query) and isinstance(query, dict):
        report.bytes_read += int(query.get("bytes", 0))
    leftovers = _leftovers(directory, manifest)
    if leftovers:
        report.notes.append(
            f"{len(leftovers)} file(s) left by an interrupted write ({', '.join(leftovers[:3])}); "
            "the next 'semindex index' removes them"
        )
    return report


def _check_part(
    directory: Path, manifest: IndexManifest, part: PartRef, report: VerifyReport
) -> Counter[str]:
    check_part_files(directory, part, full=True)
    problem = ann_problem(directory, part, full=True)
    if problem is not None:
        report.problems.append(
            f"{problem}; search scans that part exactly until 'semindex index FOLDER' builds it again"
        )
    report.bytes_read += sum(int(facts.get("bytes", 0)) for facts in part.files.values())
    vectors = all_vectors(read_vectors(directory, manifest, part))
    path = directory / part.chunks_name
    try:
        handle = pq.ParquetFile(path)
        schema = handle.schema_arrow
        for column in CHUNK_SCHEMA:
            if schema.field(column.name).type != column.type:
                report.problems.append(f"{path}: column {column.name} is {schema.field(column.name).type}")
        paths: Counter[str] = Counter()
        keys: Counter[tuple[Any, ...]] = Counter()
        rows = 0
        for number in range(handle.metadata.num_row_groups):
            whole = handle.read_row_group(number)
            whole.validate(full=True)  # every column decodes: text is valid UTF-8, and so on
            group = whole.select(["path", "record", "chunk"])
            rows += group.num_rows
            paths.update(group.column("path").to_pylist())
            keys.update(zip(*(group.column(c).to_pylist() for c in ("path", "record", "chunk")), strict=True))
    except (OSError, KeyError, pa.ArrowException) as exc:
        report.problems.append(f"{path} is not a readable chunk file ({exc})")
        return Counter()
    if rows != part.rows:
        report.problems.append(f"{path} has {rows} rows, the manifest says {part.rows}")
    if part.has_keywords:
        report.problems.extend(_keyword_problems(directory / part.keywords_name, part.rows))
    repeated = [key for key, count in keys.items() if count > 1]
    if any(key[1] is None for key in repeated):
        key = next(k for k in repeated if k[1] is None)
        report.problems.append(f"{path} holds chunk {key[2]} of {key[0]} {keys[key]} times")
    elif repeated:  # records may share an id; that is the data, not damage
        report.notes.append(f"{repeated[0][0]}: record id {repeated[0][1]!r} appears more than once")
    norms = np.linalg.norm(vectors, axis=1) if len(vectors) else np.ones(0)
    bad = int(np.sum(~np.isfinite(norms) | (np.abs(norms - 1.0) > 1e-3)))
    if bad:
        report.problems.append(f"{directory / part.vectors_name}: {bad} vectors are not of unit length")
    report.chunks += rows
    return paths


def _keyword_problems(path: Path, rows: int) -> list[str]:
    """What is wrong inside a part's keyword file: read whole, every posting checked (search
    maps the file and checks only the postings its queries reach)."""
    try:
        keywords = KeywordPart.open(path)
    except SemindexError as exc:
        return [str(exc)]
    problems = []
    if keywords.num_rows != rows:
        problems.append(f"{path} has {keywords.num_rows} rows, the manifest says {rows}")
    if len(keywords.vocab) > 1 and bool((keywords.vocab[1:] <= keywords.vocab[:-1]).any()):
        problems.append(f"{path}: its terms are not in order")
    for name in ("freqs", "lengths"):
        values = getattr(keywords, name)
        if len(values) and not bool(np.isfinite(values).all() and (values >= 0).all()):
            problems.append(f"{path}: its {name} are not all finite and non-negative")
    return problems


def _check_file_table(
    directory: Path, manifest: IndexManifest, paths_in_parts: dict[str, Counter[str]], report: VerifyReport
) -> None:
    try:
        entries = read_file_table(directory, manifest)
    except (SemindexError, OSError, pa.ArrowException) as exc:
        report.problems.append(f"the file table cannot be read: {exc}")
        return
    if manifest.file_table:
        report.bytes_read += int(manifest.file_table.get("bytes", 0))
    report.files = len(entries)
    stored: Counter[str] = Counter()
    for counts in paths_in_parts.values():
        stored.update(counts)
    for path, count in stored.items():
        entry = entries.get(path)
        if entry is None or entry.status != "indexed":
            report.problems.append(
                f"chunks of {path} are stored, but the file table does not list it as indexed"
            )
        elif entry.chunks != count:
            report.problems.append(
                f"{path}: the file table says {entry.chunks} chunks, the parts hold {count}"
            )
        elif set(entry.parts) != {p for p, counts in paths_in_parts.items() if path in counts}:
            report.problems.append(f"{path}: the file table names other parts than those holding its chunks")
    for path, entry in entries.items():
        if entry.status == "indexed" and path not in stored and len(paths_in_parts) == report.parts:
            report.problems.append(f"{path} is listed as indexed, but no part holds its chunks")
    documents = sum(e.status == "indexed" for e in entries.values())
    if manifest.file_table and documents != manifest.counts.get("documents"):
        report.problems.append(
            f"the manifest counts {manifest.counts.get('documents')} documents, the file table {documents}"
        )


def _leftovers(directory: Path, manifest: IndexManifest) -> list[str]:
    return [name for name, _ in garbage(directory, manifest)]
