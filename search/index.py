"""Open an index and search it: ``Index.open``, ``search``, ``search_many``, ``info``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.config import INDEX_DIRNAME
from indexer.embedding import Embedder, load_embedder
from indexer.errors import REBUILD_HINT, IndexCorruptError, IndexNotFoundError, ModelMismatchError, QueryError
from indexer.manifest import IndexManifest
from indexer.models import resolve_model
from indexer.paths import resolve_path
from search.keyword import KeywordSearcher
from search.rank import reciprocal_rank_fusion
from search.results import SearchResult, result_from_row
from search.shards import OpenPart, cosine, dense_hits, fetch_rows, open_parts

MAX_QUERY_CHARS = 10_000
MODES = ("hybrid", "dense", "keyword")
DEFAULT_MODE = "hybrid"  # the best of the three on SciFact's training queries (bench/scifact.py)
HYBRID_DEPTH = 100  # how deep each ranking is read before fusing


def find_index(start: str | Path | None = None) -> Path:
    """The nearest ``.semindex`` folder in ``start`` (default: the current folder) or its parents."""
    here = resolve_path(start or Path.cwd())
    for folder in (here, *here.parents):
        candidate = folder / INDEX_DIRNAME
        if (candidate / "manifest.json").is_file():
            return candidate
    raise IndexNotFoundError(
        f"no {INDEX_DIRNAME} index in {here} or its parents; build one with "
        "'semindex index FOLDER' or pass --index DIR"
    )


def index_location(path: str | Path | None) -> Path:
    """The index folder meant by ``path``: the folder itself, the ``.semindex`` inside it, or
    (when ``path`` is None) the nearest ``.semindex`` upwards from the current folder."""
    if path is None:
        return find_index()
    directory = resolve_path(path)
    nested = directory / INDEX_DIRNAME
    if not (directory / "manifest.json").is_file() and (nested / "manifest.json").is_file():
        return nested
    return directory


@dataclass(frozen=True)
class IndexInfo:
    """What ``semindex info`` shows about an index."""

    path: str
    model: str
    dimension: int
    documents: int
    chunks: int
    size_bytes: int
    created_at: str
    updated_at: str
    version: int
    parts: int
    faiss_type: str
    chunking: dict[str, Any]
    versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return the info as JSON-ready data."""
        return dict(self.__dict__)


class Index:
    """A built index, opened for searching. Create one with ``Index.open``."""

    def __init__(
        self,
        directory: Path,
        manifest: IndexManifest,
        parts: list[OpenPart],
        embedder: Embedder | None,
        model: str | None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self._parts = parts
        self._size = sum(int(p.vectors.ntotal) for p in parts)
        self._embedder = embedder
        self._model = model
        self._keyword: KeywordSearcher | None = None

    @property
    def version(self) -> int:
        """The version of the index this object reads (it goes up by one with each write)."""
        return int(self.manifest.version)

    @classmethod
    def open(
        cls, path: str | Path | None = None, *, model: str | None = None, embedder: Embedder | None = None
    ) -> Index:
        """Open the index at ``path`` (default: the nearest ``.semindex`` upwards).

        Args:
            path: The index folder, or a folder that holds a ``.semindex`` index.
            model: Refuse to open unless the index was built with this model (name or path).
            embedder: A loaded model to embed queries with (it must match the index's model).

        Raises:
            IndexNotFoundError: No index there.
            IndexCorruptError: A file of the index is missing, damaged or inconsistent.
            ModelMismatchError: ``model`` or ``embedder`` differs from the index's model.
        """
        directory = index_location(path)
        manifest, parts = _open_version(directory)
        if model is not None:
            wanted = resolve_model(model).name
            if wanted != manifest.model_name:
                raise ModelMismatchError(
                    f"the index at {directory} was built with model {manifest.model_name}, not {wanted}; "
                    "drop --model to use the index's own model, or rebuild with --model"
                )
        if embedder is not None and embedder.name != manifest.model_name:
            raise ModelMismatchError(
                f"the index at {directory} was built with model {manifest.model_name}, "
                f"but the embedder given is {embedder.name}"
            )
        return cls(directory, manifest, parts, embedder, model)

    @property
    def embedder(self) -> Embedder:
        """The index's own model, loaded on first use."""
        if self._embedder is None:
            embedder = load_embedder(self._model or self.manifest.model_name)
            if embedder.dimension != self.manifest.dimension:
                raise ModelMismatchError(
                    f"model {embedder.name} makes {embedder.dimension}-dimensional vectors, the index "
                    f"holds {self.manifest.dimension}; {REBUILD_HINT}"
                )
            self._embedder = embedder
        return self._embedder

    def __len__(self) -> int:
        return self._size

    @property
    def modes(self) -> tuple[str, ...]:
        """The search modes this index supports (keyword and hybrid need keyword postings)."""
        if all(part.keywords is not None for part in self._parts):
            return MODES
        return ("dense",)

    def _mode(self, mode: str | None) -> str:
        if mode is None:
            return DEFAULT_MODE if DEFAULT_MODE in self.modes else "dense"
        if mode not in MODES:
            raise QueryError(f"mode must be one of {', '.join(MODES)} (got {mode!r})")
        if mode not in self.modes:
            raise QueryError(
                f"the index at {self.directory} has no keyword postings (written by an earlier semindex); "
                "update it with 'semindex index FOLDER' to use --mode " + mode
            )
        return mode

    def search(self, query: str, k: int = 10, mode: str | None = None) -> list[SearchResult]:
        """The ``k`` chunks that best match ``query``, best first.

        Args:
            query: What to search for, in your own words.
            k: How many results.
            mode: ``hybrid`` (the default: meaning and keywords fused), ``dense`` (cosine
                similarity of embeddings only) or ``keyword`` (BM25 only).
        """
        return self.search_many([query], k=k, mode=mode)[0]

    def search_many(
        self, queries: Sequence[str], k: int = 10, mode: str | None = None
    ) -> list[list[SearchResult]]:
        """``search`` for several queries at once (their embeddings are computed in one batch)."""
        if isinstance(queries, str):
            raise QueryError("search_many takes a list of queries; use search() for one")
        _check_k(k)
        mode = self._mode(mode)
        for number, query in enumerate(queries, start=1):
            check_query(query, number if len(queries) > 1 else None)
        if not queries or len(self) == 0:
            return [[] for _ in queries]
        if mode == "keyword":
            return [self._keyword_results(query, k) for query in queries]
        vectors = self._normalised(self.embedder.embed_queries(list(queries)))
        if mode == "dense":
            return self._dense_results(vectors, k)
        return [self._hybrid_results(q, v, k) for q, v in zip(queries, vectors, strict=True)]

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[SearchResult]]:
        """Dense search with query vectors already made (rows are normalised here)."""
        _check_k(k)
        vectors = self._normalised(vectors)
        if len(self) == 0:
            return [[] for _ in range(len(vectors))]
        return self._dense_results(vectors, k)

    def _normalised(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.manifest.dimension:
            raise QueryError(
                f"query vectors must have shape (n, {self.manifest.dimension}), got {vectors.shape}"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    @property
    def keyword(self) -> KeywordSearcher:
        """BM25 over the index's keyword postings (all parts together)."""
        if self._keyword is None:
            parts = [p.keywords for p in self._parts]
            if any(p is None for p in parts):
                self._mode("keyword")  # raises the error that says what to do
            terms = sum(int(p.ref.terms or 0) for p in self._parts)
            self._keyword = KeywordSearcher([p for p in parts if p is not None], terms)
        return self._keyword

    def _results(self, found: list[tuple[tuple[int, int], dict[str, Any]]]) -> list[SearchResult]:
        rows = fetch_rows(self._parts, [key for key, _ in found])
        return [result_from_row(rank, rows[key], **facts) for rank, (key, facts) in enumerate(found, start=1)]

    def _dense_results(self, vectors: np.ndarray, k: int) -> list[list[SearchResult]]:
        out = []
        for hits in dense_hits(self._parts, vectors, min(int(k), len(self))):
            # Inner product of unit vectors is cosine; rounding can step just past 1.
            found = []
            for rank, (score, part, row) in enumerate(hits, start=1):
                cosine_score = _clip(score)
                facts = {"score": cosine_score, "mode": "dense", "cosine": cosine_score, "dense_rank": rank}
                found.append(((part, row), facts))
            out.append(self._results(found))
        return out

    def _keyword_results(self, query: str, k: int) -> list[SearchResult]:
        hits = self.keyword.scores(query).top(min(int(k), len(self)))
        found = [
            ((part, row), {"score": score, "mode": "keyword", "keyword_score": score, "keyword_rank": rank})
            for rank, (score, part, row) in enumerate(hits, start=1)
        ]
        return self._results(found)

    def _hybrid_results(self, query: str, vector: np.ndarray, k: int) -> list[SearchResult]:
        depth = max(int(k), HYBRID_DEPTH)
        (dense,) = dense_hits(self._parts, vector[None, :], min(depth, len(self)))
        scores = self.keyword.scores(query)
        fused = reciprocal_rank_fusion(dense, scores.top(depth))[: int(k)]
        cosines = {(p, r): s for s, p, r in dense}
        found = []
        for hit in fused:
            key = (hit.part, hit.row)
            similarity = cosines.get(key)
            if similarity is None:
                similarity = cosine(self._parts, vector, hit.part, hit.row)
            facts = {
                "score": hit.score,
                "mode": "hybrid",
                "cosine": _clip(similarity),
                "keyword_score": scores.score(hit.part, hit.row),
                "dense_rank": hit.dense_rank,
                "keyword_rank": hit.keyword_rank,
            }
            found.append((key, facts))
        return self._results(found)

    def info(self) -> IndexInfo:
        """Facts about the index: model, size, counts, creation time."""
        listed = [f for p in self.manifest.part_refs for f in p.files.values()]
        if self.manifest.file_table:
            listed.append(self.manifest.file_table)
        size = sum(int(f.get("bytes", 0)) for f in listed)
        return IndexInfo(
            path=str(self.directory),
            model=self.manifest.model_name,
            dimension=self.manifest.dimension,
            documents=int(self.manifest.counts.get("documents", 0)),
            chunks=len(self),
            size_bytes=size,
            created_at=self.manifest.created_at,
            updated_at=self.manifest.updated_at,
            version=int(self.manifest.version),
            parts=len(self._parts),
            faiss_type=str(self.manifest.faiss.get("type", "")),
            chunking=dict(self.manifest.chunking),
            versions=dict(self.manifest.versions),
        )


def _open_version(directory: Path, attempts: int = 5) -> tuple[IndexManifest, list[OpenPart]]:
    """Read the manifest and open the parts it lists, all of one version.

    A writer deletes the files of the version it replaced just after switching; a reader that
    read the old manifest a moment before may find them gone. It then starts again from the new
    manifest, so it sees one version whole, never a mix.
    """
    for attempt in range(attempts):
        stamp = _manifest_stamp(directory)
        manifest = IndexManifest.load(directory)
        try:
            return manifest, open_parts(directory, manifest)
        except IndexCorruptError:
            if attempt + 1 == attempts or _manifest_stamp(directory) == stamp:
                raise  # the files really are damaged, not replaced under us
    raise AssertionError("unreachable")


def _manifest_stamp(directory: Path) -> tuple[int, int] | None:
    try:
        facts = (directory / "manifest.json").stat()
    except OSError:
        return None
    return (facts.st_ino, facts.st_mtime_ns)


def _clip(score: float) -> float:
    return float(min(1.0, max(-1.0, score)))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise QueryError(f"k must be a whole number of at least 1 (got {k!r})")


def check_query(query: object, number: int | None = None) -> None:
    """Raise QueryError unless ``query`` is non-empty text of a sensible length."""
    where = f"query {number}" if number is not None else "the query"
    if not isinstance(query, str):
        raise QueryError(f"{where} must be text, not {type(query).__name__}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(
            f"{where} holds bytes that are not valid UTF-8 text; check your terminal's encoding"
        ) from exc
    if not query.strip():
        raise QueryError(f"{where} is empty; type some words to search for")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(f"{where} is longer than {MAX_QUERY_CHARS} characters; shorten it")
