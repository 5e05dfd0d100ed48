"""Cosine similarity between texts: the tutorial's job, done with pooled, normalised embeddings."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from indexer.embedding import Embedder, SemindexWarning, load_embedder
from indexer.errors import QueryError


def similarity_matrix(
    texts: Sequence[str], *, model: str | None = None, embedder: Embedder | None = None
) -> np.ndarray:
    """The n×n matrix of cosine similarities between ``texts`` (1.0 on the diagonal).

    Each text is embedded whole as one pooled, unit-length vector, so texts of any lengths
    compare fairly; the product of two such vectors is their cosine.
    """
    if len(texts) < 2:
        raise QueryError("give at least two texts to compare")
    for number, text in enumerate(texts, start=1):
        if not text.strip():
            raise QueryError(f"text {number} is empty")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise QueryError(f"text {number} holds bytes that are not valid UTF-8 text") from exc
    embedder = embedder or load_embedder(model)
    _warn_if_truncated(embedder, texts)
    vectors = embedder.embed_documents(list(texts))
    return np.clip(vectors @ vectors.T, -1.0, 1.0)


def _warn_if_truncated(embedder: Embedder, texts: Sequence[str]) -> None:
    """Say so when the model will read only the start of a text (it has a fixed input length)."""
    tokenizer = getattr(embedder, "tokenizer", None)
    limit = getattr(embedder, "token_limit", None)
    if tokenizer is None or limit is None:
        return
    for number, count in enumerate(tokenizer.count_tokens(list(texts)), start=1):
        if count > limit:
            warnings.warn(
                f"text {number} has {count} tokens; the model reads only the first {limit}",
                SemindexWarning,
                stacklevel=3,
            )
