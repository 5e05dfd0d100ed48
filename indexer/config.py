"""Frozen settings for chunking and building; recorded in the manifest."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from indexer.errors import InputError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
INDEX_DIRNAME = ".semindex"


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are split. ``max_tokens=None`` means the model's own limit."""

    max_tokens: int | None = None
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 8:
            raise InputError(f"chunk size must be at least 8 tokens (got {self.max_tokens})")
        if self.overlap_tokens < 0:
            raise InputError(f"chunk overlap cannot be negative (got {self.overlap_tokens})")

    def resolve(self, model_limit: int) -> ResolvedChunking:
        """Fix the token budget against the model's limit (special tokens already excluded)."""
        size = model_limit if self.max_tokens is None else self.max_tokens
        if size > model_limit:
            raise InputError(
                f"chunk size {size} exceeds the model's limit of {model_limit} tokens per chunk; "
                f"use --chunk-tokens {model_limit} or less"
            )
        if self.overlap_tokens >= size // 2:
            raise InputError(
                f"chunk overlap {self.overlap_tokens} must be under half the chunk size ({size})"
            )
        return ResolvedChunking(max_tokens=size, overlap_tokens=self.overlap_tokens)


@dataclass(frozen=True)
class ResolvedChunking:
    """Chunking settings with the token budget fixed; this is what the manifest records."""

    max_tokens: int
    overlap_tokens: int

    def to_dict(self) -> dict[str, int]:
        """Return the settings as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class BuildConfig:
    """Settings of one build beyond the model and chunking."""

    max_file_size: int = 50 * 1024 * 1024
    include: tuple[str, ...] = ()  # gitignore-style patterns; when given, only matching files
    exclude: tuple[str, ...] = ()  # gitignore-style patterns, added to .semindexignore
    strict: bool = False  # stop at the first file that fails to read or parse
    records: bool | None = None  # read record files as one document per record (None: detect)
    id_field: str = "_id"
    text_fields: tuple[str, ...] = ("title", "text")
    embed_batch_chunks: int = 1024  # chunks gathered and sorted by length before embedding
    embed_slice_chunks: int = 64  # chunks per model call within a batch (progress granularity)
    row_group_size: int = 256  # a hit reads its row group (0.4 ms at 256 rows, 1.3 ms at 4096)
    part_rows: int = 65_536  # rows per part: an update rewrites only the parts its files touch
    # Store an ONNX export of the model so queries need no torch: True adds one, False removes
    # it, None keeps what the index has (a new index gets one).
    query_model: bool | None = None
    # The FAISS structure: "flat", "hnsw", "ivf" or "ivfpq" (kept by later updates), "auto" to
    # choose by size again, None to keep the index's choice (by size for a new index).
    index_type: str | None = None

    @classmethod
    def from_extraction(cls, stored: dict[str, Any], **settings: Any) -> BuildConfig:
        """Settings whose reading part is ``stored`` (what ``extraction`` recorded); others as given."""
        defaults = cls()
        return cls(
            max_file_size=int(stored.get("max_file_size", defaults.max_file_size)),
            records=stored.get("records", defaults.records),
            id_field=str(stored.get("id_field", defaults.id_field)),
            text_fields=tuple(stored.get("text_fields", defaults.text_fields)),
            **settings,
        )

    def extraction(self) -> dict[str, object]:
        """The settings that change what is read from a file; when they change, files are read again."""
        return {
            "max_file_size": self.max_file_size,
            "records": self.records,
            "id_field": self.id_field,
            "text_fields": list(self.text_fields),
        }
