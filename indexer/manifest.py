"""``manifest.json``: everything needed to open and query an index without asking the user."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from indexer import __version__
from indexer.errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError

FORMAT_NAME = "semindex"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
FAISS_FILE = "index.faiss"
CHUNKS_FILE = "chunks.parquet"
STAGING_MARKER = ".semindex-staging"  # written first into a staging folder: only such folders are ours

_REQUIRED = ("format", "format_version", "created_at", "model", "chunking", "faiss", "counts", "files")
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
    for key in ("model", "chunking", "faiss", "counts", "files", "versions", "build"):
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
    for name, facts in data["files"].items():
        if name not in (FAISS_FILE, CHUNKS_FILE):
            return f"files lists an unknown file {name!r}"
        if not isinstance(facts, dict) or not _is_int(facts.get("bytes")):
            return f"files.{name}.bytes is not a whole number"
    if not isinstance(data.get("root"), (str, type(None))):
        return "root is not text"
    return None


@dataclass
class IndexManifest:
    """The contents of ``manifest.json``."""

    model: dict[str, Any]
    chunking: dict[str, Any]
    faiss: dict[str, Any]
    counts: dict[str, int]
    files: dict[str, dict[str, Any]]
    root: str | None = None
    created_at: str = field(default_factory=utc_now)
    versions: dict[str, str] = field(default_factory=library_versions)
    build: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    @property
    def model_name(self) -> str:
        """The name of the model that wrote the vectors."""
        return str(self.model["name"])

    @property
    def dimension(self) -> int:
        """The length of each stored vector."""
        return int(self.model["dimension"])

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest as JSON-ready data."""
        return asdict(self)

    def save(self, directory: Path) -> None:
        """Write ``manifest.json`` into ``directory`` (through a temporary file, fsynced)."""
        target = directory / MANIFEST_FILE
        temporary = directory / f".{MANIFEST_FILE}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)

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
                f"understands ({FORMAT_VERSION}); upgrade semindex"
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise IndexCorruptError(f"{path} is malformed ({exc}); " + REBUILD_HINT) from exc
