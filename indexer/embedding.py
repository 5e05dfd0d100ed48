"""Turn text into unit-length vectors with a sentence-embedding model.

``Embedder`` is the protocol the rest of semindex uses; ``SentenceTransformerEmbedder`` is the
torch implementation. torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from indexer.errors import ModelError
from indexer.imports import let_in
from indexer.models import ModelRef, check_hub_reachable, resolve_model
from indexer.threads import apply_to_torch


class SemindexWarning(UserWarning):
    """A warning meant for the user (the CLI prints these as one line on stderr)."""


class Embedder(Protocol):
    """What semindex needs from an embedding model."""

    name: str
    dimension: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, for indexing."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per query."""
        ...


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (zero rows stay zero); inner product then equals cosine."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"expected a 2-D array of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors


class ModelTokenizer:
    """The model's own tokenizer, adapted to what chunking needs (no truncation, no padding)."""

    def __init__(self, backend: Any) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(backend.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.special_tokens = self._tokenizer.num_special_tokens_to_add(False)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, special tokens excluded."""
        return list(self._tokenizer.encode(text, add_special_tokens=False).offsets)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text, special tokens excluded."""
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]


# Families trained with fixed prefixes, for copies whose config does not name them (as
# sentence-transformers' ``prompts``); the prefixes are recorded in the manifest at build time.
_FAMILY_PREFIXES = (
    (
        re.compile(r"e5-.*instruct", re.I),
        ("Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: ", ""),
    ),
    (re.compile(r"(^|[/_-])e5-", re.I), ("query: ", "passage: ")),
    (
        re.compile(r"bge-(small|base|large)-(en|zh)(-v1\.5)?$", re.I),
        ("Represent this sentence for searching relevant passages: ", ""),
    ),
    (re.compile(r"nomic-embed-text", re.I), ("search_query: ", "search_document: ")),
)


def family_prefixes(name: str) -> tuple[str, str]:
    """The query and document prefixes a known model family expects ("" and "" otherwise)."""
    for pattern, prefixes in _FAMILY_PREFIXES:
        if pattern.search(name.rstrip("/")):
            return prefixes
    return "", ""


class SentenceTransformerEmbedder:
    """A sentence-transformers model (or a plain Hugging Face encoder with mean pooling)."""

    def __init__(self, ref: ModelRef, device: str | None = None) -> None:
        self.ref = ref
        self.name = ref.name
        self._model = _load_sentence_transformer(ref, device)
        model = self._model
        dimension = (
            model.get_embedding_dimension()
            if hasattr(model, "get_embedding_dimension")
            else model.get_sentence_embedding_dimension()
        )
        if not dimension:
            raise ModelError(f"model {ref.name} does not report its embedding dimension")
        self.dimension = int(dimension)
        self.max_seq_length = int(model.max_seq_length)
        self.pooling = _pooling_mode(model)
        prompts = getattr(model, "prompts", None) or {}
        query, document = prompts.get("query"), prompts.get("document") or prompts.get("passage")
        if not query and not document:
            query, document = family_prefixes(ref.name)
        self.query_prefix = str(query or "")
        self.document_prefix = str(document or "")
        backend = getattr(model.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise ModelError(f"the tokenizer of {ref.name} has no fast (Rust) version, which chunking needs")
        self.tokenizer = ModelTokenizer(backend)
        prefix_tokens = self.tokenizer.count_tokens([self.document_prefix])[0]
        # Room left for a chunk's own tokens once special tokens and any prefix are added.
        self.token_limit = self.max_seq_length - self.tokenizer.special_tokens - prefix_tokens
        if self.token_limit < 8:
            raise ModelError(f"model {ref.name} accepts too few tokens ({self.max_seq_length})")

    def with_query_prefix(self, prefix: str) -> SentenceTransformerEmbedder:
        """The same model (shared, not reloaded) with another query prefix."""
        other = copy.copy(self)
        other.query_prefix = prefix
        return other

    def describe(self) -> dict[str, Any]:
        """The settings the manifest records so the index is always queried the same way."""
        return {
            "name": self.name,
            "source": self.ref.source,
            "dimension": self.dimension,
            "pooling": self.pooling,
            "normalize": "l2",
            "similarity": "cosine",
            "max_seq_length": self.max_seq_length,
            "query_prefix": self.query_prefix,
            "document_prefix": self.document_prefix,
        }

    def _encode(self, texts: Sequence[str], prefix: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            prompt=prefix or None,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return normalize_rows(vectors)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for chunks, one row per text."""
        return self._encode(texts, self.document_prefix, batch_size)

    def embed_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for queries, one row per text."""
        return self._encode(texts, self.query_prefix, batch_size)


def _pooling_mode(model: Any) -> str:
    for module in model:
        if type(module).__name__ == "Pooling":
            config = module.get_config_dict()
            mode = config.get("pooling_mode")
            if isinstance(mode, (list, tuple)):
                return "+".join(str(m) for m in mode)
            if mode:
                return str(mode)
            enabled = [
                k[len("pooling_mode_") :]
                for k, v in config.items()
                if k.startswith("pooling_mode_") and v is True
            ]
            return "+".join(enabled) or "unknown"
    return "model"


def _is_plain_transformer(ref: ModelRef) -> bool:
    """A Hugging Face model folder without sentence-transformers modules (e.g. bert-base-cased)."""
    folder = os.path.join(ref.location, "modules.json")
    return ref.is_local and not os.path.isfile(folder)


def _load_sentence_transformer(ref: ModelRef, device: str | None) -> Any:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    let_in()  # transformers probes for pandas; a query's process may have kept it out
    if not ref.is_local:
        check_hub_reachable(ref.name)
    try:
        import huggingface_hub.utils
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        huggingface_hub.utils.logging.set_verbosity_error()  # no retry chatter on stderr
    except ImportError as exc:
        raise ModelError(
            f"cannot import sentence-transformers ({exc}); reinstall semindex with its dependencies"
        ) from exc
    if _is_plain_transformer(ref):
        warnings.warn(
            f"{ref.name} is a plain transformer, not trained for sentence similarity: using mean "
            "pooling over the attention mask; expect weaker results than a sentence-transformers model",
            SemindexWarning,
            stacklevel=3,
        )
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            loaded = SentenceTransformer(ref.location, device=device, local_files_only=ref.is_local)
            apply_to_torch()  # a --threads cap, now that torch is imported
            return loaded
    except Exception as exc:  # the loaders raise OSError, ValueError, HTTP errors, ...
        if device is not None and ("device" in str(exc).lower() or "cuda" in str(exc).lower()):
            raise ModelError(
                f"cannot use device {device!r} ({str(exc).strip().splitlines()[0]}); "
                "pass --device cpu, or a device this machine has"
            ) from exc
        where = (
            "its folder may be incomplete"
            if ref.is_local
            else "it is not on this machine and could not be downloaded; pass a local folder with --model"
        )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model {ref.name}: {where} ({first_line})") from exc


@functools.lru_cache(maxsize=4)
def _cached_embedder(ref: ModelRef, device: str | None) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(ref, device)


_default_device: str | None = None


def set_default_device(device: str | None) -> None:
    """The device models load on when none is named (None: a CUDA GPU if present, else cpu)."""
    global _default_device
    _default_device = device


def load_embedder(model: str | None = None, device: str | None = None) -> SentenceTransformerEmbedder:
    """Load (once per process) the model named by ``model``; None means the default model.

    ``device`` (default: ``set_default_device``'s, else a CUDA GPU when one is present, else the
    CPU) is where it embeds.
    """
    return _cached_embedder(resolve_model(model), device or _default_device)
