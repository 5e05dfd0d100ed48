"""``manifest.json``: everything needed to open and query an index without asking the user."""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from indexer import __version__
from indexer.errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError

FORMAT_NAME = "semindex"
FORMAT_VERSION = 2
MANIFEST_FILE = "manifest.json"
ANN_DIR = "ann"  # one approximate-search file per part of a large index (indexer/ann.py)
ANN_NAME = re.compile(r"ann/part-[0-9a-f]{16}\.faiss")
CHUNKS_DIR = "chunks"  # one Parquet file per part: read the folder with pandas or DuckDB
VECTORS_DIR = "vectors"  # one FAISS file per part
KEYWORDS_DIR = "keywords"  # one BM25 postings file per part
LOCK_FILE = "semindex.lock"
PART_ID = re.compile(r"[0-9a-f]{16}")
FILE_TABLE = re.compile(r"files-[0-9a-f]{16}\.parquet")
# Format 1 kept one pair of files at the top of the folder; it is still read, and rewritten as
# parts by the next update.
LEGACY_FAISS_FILE = "index.faiss"
LEGACY_CHUNKS_FILE = "chunks.parquet"
LEGACY_PART_ID = "legacy"

_REQUIRED = ("format", "format_version", "created_at", "model", "chunking", "faiss", "counts")
_LIBRARIES = ("faiss-cpu", "pyarrow", "numpy", "torch", "transformers", "sentence-transformers", "tokenizers")


def library_versions() -> dict[str, str]:
    """Versions of semindex, Python and the libraries that shape an index's contents."""
    versions = {"semindex": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def utc_now() -> str:
    """The current time as an ISO 8601 string in UTC."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_index_folder(path: Path) -> bool:
    """Whether ``path`` holds a semindex manifest (not merely some file named manifest.json)."""
    manifest = path / MANIFEST_FILE
    try:
        if not manifest.is_file() or manifest.stat().st_size > 16 * 1024 * 1024:
            return False
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT_NAME


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _type_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with the shape of a manifest's data, or None."""
    if not _is_int(data["format_version"]):
        return "format_version is not a whole number"
    if not isinstance(data["created_at"], str):
        return "created_at is not text"
    for key in ("model", "chunking", "faiss", "counts", "files", "versions", "build", "extraction"):
        if not isinstance(data.get(key, {}), dict):
            return f"{key} is not an object"
    model = data["model"]
    if not isinstance(model.get("name"), str) or not model["name"]:
        return "model.name is missing"
    if not _is_int(model.get("dimension")) or model["dimension"] == 0:
        return "model.dimension is not a positive whole number"
    for key in ("chunks", "documents"):
        if not _is_int(data["counts"].get(key)):
            return f"counts.{key} is not a whole number"
    for key in ("max_tokens", "overlap_tokens"):
        if not _is_int(data["chunking"].get(key)):
            return f"chunking.{key} is not a whole number"
    if not isinstance(data.get("root"), (str, type(None))):
        return "root is not text"
    extraction = data.get("extraction", {})
    if "max_file_size" in extraction and not _is_int(extraction["max_file_size"]):
        return "extraction.max_file_size is not a whole number"
    if not isinstance(extraction.get("records"), (bool, type(None))):
        return "extraction.records is not true, false or null"
    if not isinstance(extraction.get("id_field", ""), str):
        return "extraction.id_field is not text"
    fields = extraction.get("text_fields", [])
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        return "extraction.text_fields is not a list of names"
    if data["format_version"] < 2:
        if "files" not in data:
            return "files is missing"
        for name, facts in data["files"].items():
            if name not in (LEGACY_FAISS_FILE, LEGACY_CHUNKS_FILE):
                return f"files lists an unknown file {name!r}"
            if not isinstance(facts, dict) or not _is_int(facts.get("bytes")):
                return f"files.{name}.bytes is not a whole number"
        return None
    return _parts_problem(data)


def _file_facts_problem(where: str, facts: object) -> str | None:
    if not isinstance(facts, dict) or not _is_int(facts.get("bytes")):
        return f"{where}.bytes is not a whole number"
    for key in ("sample_sha256", "sha256"):
        if not isinstance(facts.get(key, ""), str):
            return f"{where}.{key} is not text"
    return None


def _parts_problem(data: dict[str, Any]) -> str | None:
    parts = data.get("parts")
    if not isinstance(parts, list):
        return "parts is not a list"
    seen = set()
    for number, part in enumerate(parts):
        where = f"parts[{number}]"
        if not isinstance(part, dict):
            return f"{where} is not an object"
        if not isinstance(part.get("id"), str) or not PART_ID.fullmatch(part["id"]):
            return f"{where}.id is not a part id"  # it names files: nothing else may get through
        if part["id"] in seen:
            return f"{where}.id repeats an earlier part"
        seen.add(part["id"])
        if not _is_int(part.get("rows")):
            return f"{where}.rows is not a whole number"
        files = part.get("files")
        if not isinstance(files, dict) or set(files) - {"keywords", "ann"} != {"chunks", "vectors"}:
            return f"{where}.files must describe its chunks and vectors (and keywords)"
        if "ann" in files and not (
            isinstance(files["ann"], dict)
            and isinstance(files["ann"].get("name"), str)
            and ANN_NAME.fullmatch(files["ann"]["name"])
        ):
            return f"{where}.files.ann does not name an ANN file"  # it names a file to read
        if "terms" in part and not _is_int(part["terms"]):
            return f"{where}.terms is not a whole number"
        for kind, facts in files.items():
            problem = _file_facts_problem(f"{where}.files.{kind}", facts)
            if problem:
                return problem
    if sum(part["rows"] for part in parts) != data["counts"]["chunks"]:
        return "the parts' rows do not add up to counts.chunks"
    table = data.get("file_table")
    if table is not None:
        if not isinstance(table, dict) or not FILE_TABLE.fullmatch(str(table.get("name", ""))):
            return "file_table.name is not a file table name"
        problem = _file_facts_problem("file_table", table)
        if problem:
            return problem
    if not _is_int(data.get("version", 0)):
        return "version is not a whole number"
    return None


@dataclass(frozen=True)
class PartRef:
    """One part of an index as the manifest lists it: a Parquet file and a FAISS file, row i = id i."""

    id: str
    rows: int
    files: dict[str, dict[str, Any]]
    terms: int | None = None  # the number of keyword terms in its rows (for BM25's mean length)

    @property
    def chunks_name(self) -> str:
        """The Parquet file's path inside the index folder."""
        if self.id == LEGACY_PART_ID:
            return LEGACY_CHUNKS_FILE
        return f"{CHUNKS_DIR}/part-{self.id}.parquet"

    @property
    def vectors_name(self) -> str:
        """The FAISS file's path inside the index folder."""
        if self.id == LEGACY_PART_ID:
            return LEGACY_FAISS_FILE
        return f"{VECTORS_DIR}/part-{self.id}.faiss"

    @property
    def keywords_name(self) -> str:
        """The keyword postings file's path inside the index folder."""
        return f"{KEYWORDS_DIR}/part-{self.id}.npz"

    @property
    def ann(self) -> dict[str, Any] | None:
        """The part's ANN file (its name, type and checksums), if it has one (indexer/ann.py)."""
        facts = self.files.get("ann")
        return facts if isinstance(facts, dict) and isinstance(facts.get("name"), str) else None

    @property
    def has_keywords(self) -> bool:
        """Whether the part has a keyword file (parts written before keyword search do not)."""
        return "keywords" in self.files and self.terms is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartRef:
        """The part a manifest entry (``to_dict``'s output) describes."""
        return cls(data["id"], int(data["rows"]), dict(data["files"]), data.get("terms"))

    def to_dict(self) -> dict[str, Any]:
        """Return the part as the manifest stores it."""
        data: dict[str, Any] = {"id": self.id, "rows": self.rows, "files": self.files}
        if self.terms is not None:
            data["terms"] = self.terms
        return data


@dataclass
class IndexManifest:
    """The contents of ``manifest.json``."""

    model: dict[str, Any]
    chunking: dict[str, Any]
    faiss: dict[str, Any]
    counts: dict[str, int]
    parts: list[dict[str, Any]] = field(default_factory=list)
    file_table: dict[str, Any] | None = None
    extraction: dict[str, Any] = field(default_factory=dict)
    root: str | None = None
    version: int = 1  # goes up by one with every write
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    versions: dict[str, str] = field(default_factory=library_versions)
    build: dict[str, Any] = field(default_factory=dict)
    query_model: dict[str, Any] | None = None  # the ONNX export queries use (indexer/onnx_model.py)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    files: dict[str, dict[str, Any]] | None = None  # format 1 only: its two files

    @property
    def model_name(self) -> str:
        """The name of the model that wrote the vectors."""
        return str(self.model["name"])

    @property
    def dimension(self) -> int:
        """The length of each stored vector."""
        return int(self.model["dimension"])

    @property
    def part_refs(self) -> list[PartRef]:
        """The parts, in id order of their rows (a format 1 index is one legacy part)."""
        if self.format_version < 2:
            files = self.files or {}
            return [
                PartRef(
                    LEGACY_PART_ID,
                    int(self.counts.get("chunks", 0)),
                    {
                        "chunks": files.get(LEGACY_CHUNKS_FILE, {}),
                        "vectors": files.get(LEGACY_FAISS_FILE, {}),
                    },
                )
            ]
        return [PartRef.from_dict(p) for p in self.parts]

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready data."""
        data = asdict(self)
        if data["files"] is None:
            del data["files"]
        return data

    def save(self, directory: Path, before_switch: Callable[[], None] | None = None) -> None:
        """Write ``manifest.json`` into ``directory``: a temporary file, fsynced, then renamed over
        the old one and the folder fsynced, so a reader sees the old version or the new, whole."""
        target = directory / MANIFEST_FILE
        temporary = directory / f"{MANIFEST_FILE}.tmp-{os.urandom(6).hex()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        if before_switch is not None:
            before_switch()
        os.replace(temporary, target)
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @classmethod
    def load(cls, directory: Path) -> IndexManifest:
        """Read and check ``manifest.json`` in ``directory``."""
        path = directory / MANIFEST_FILE
        if not directory.is_dir():
            raise IndexNotFoundError(f"no index at {directory}; build one with: semindex index FOLDER")
        if not path.is_file():
            raise IndexNotFoundError(
                f"{directory} is not a semindex index (no {MANIFEST_FILE}); "
                "build one with: semindex index FOLDER"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"{path} is unreadable ({exc}); " + REBUILD_HINT) from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise IndexCorruptError(f"{path} is not a semindex manifest; " + REBUILD_HINT)
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise IndexCorruptError(f"{path} lacks {', '.join(missing)}; " + REBUILD_HINT)
        problem = _type_problem(data)
        if problem:
            raise IndexCorruptError(f"{path} is damaged ({problem}); " + REBUILD_HINT)
        if data["format_version"] > FORMAT_VERSION:
            raise IndexCorruptError(
                f"{path} has format version {data['format_version']}, newer than this semindex "
                f"understands ({FORMAT_VERSION}); upgrade semindex, or replace the index with --rebuild"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexCorruptError(f"{path} is malformed ({exc}); " + REBUILD_HINT) from exc
