"""Open an index and search it: ``Index.open``, ``search``, ``search_many``, ``info``."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from indexer.ann import stored_type
from indexer.config import INDEX_DIRNAME
from indexer.embedding import Embedder, SemindexWarning, SentenceTransformerEmbedder, load_embedder
from indexer.errors import (
    REBUILD_HINT,
    IndexCorruptError,
    IndexNotFoundError,
    ModelError,
    ModelMismatchError,
    QueryError,
    SemindexError,
)
from indexer.filetable import read_file_table
from indexer.manifest import IndexManifest, is_index_folder
from indexer.models import resolve_model
from indexer.onnx_model import OnnxQueryEmbedder, query_model_files
from indexer.paths import resolve_path
from search.batching import QueryBatcher
from search.filters import Filters, PartColumns, mask, parse_moment
from search.keyword import KeywordSearcher
from search.rank import Selected, reciprocal_rank_fusion, select
from search.results import SearchResult, result_from_row
from search.shards import Hit, OpenPart, cosines, dense_hits, fetch_rows, open_parts
from search.snippets import make_snippet

MAX_QUERY_CHARS = 10_000
MODES = ("hybrid", "dense", "keyword")
BACKENDS = ("auto", "onnx", "onnx-int8", "torch")
ENGINES = ("local", "ray")
ONNX_BACKENDS = ("onnx", "onnx-int8")  # these never fall back to torch
ONNX_HINT = "update it with: semindex index FOLDER (it adds one), or open it with backend='torch'"
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
    if not is_index_folder(directory) and (nested / "manifest.json").is_file():
        return nested  # a documents folder (which may have a manifest.json of its own)
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
    faiss: dict[str, Any]  # type, who chose it, search settings, measured recall@10
    query_model: str  # "onnx" when queries need no torch

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
        backend: str = "auto",
        threads: int | None = None,
        shards: Any = None,
        concurrent: bool = False,
    ) -> None:
        self.directory = directory
        self._shards = shards  # a RayShards when the parts are held by Ray actors
        self.manifest = manifest
        self._parts = parts
        self._size = sum(int(p.vectors.ntotal) for p in parts)
        self._embedder = embedder
        self._model = model
        self._backend, self._threads = backend, threads
        self._concurrent = concurrent
        self._keyword: KeywordSearcher | None = None
        self._loading = threading.Lock()  # the model and keyword searcher are loaded once, by one thread
        self._batcher: QueryBatcher | None = None
        self._column_cache: dict[int, PartColumns] = {}
        self._mtimes: dict[str, int] | None = None

    @property
    def version(self) -> int:
        """The version of the index this object reads (it goes up by one with each write)."""
        return int(self.manifest.version)

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        model: str | None = None,
        embedder: Embedder | None = None,
        backend: str = "auto",
        threads: int | None = None,
        engine: str = "local",
        shards: int | None = None,
        address: str | None = None,
        concurrent: bool = False,
        mapped: bool = False,
    ) -> Index:
        """Open the index at ``path`` (default: the nearest ``.semindex`` upwards).

        Args:
            path: The index folder, or a folder that holds a ``.semindex`` index.
            model: Refuse to open unless the index was built with this model (name or path).
            embedder: A loaded model to embed queries with (it must match the index's model).
            backend: How queries are embedded: "onnx" (the index's ONNX export, no torch),
                "onnx-int8" (an int8 copy of it, made when the model loads: 0.4x the CPU a
                query; cosine 0.994 to fp32 on average; SciFact nDCG@10 -0.001 dense, -0.006
                hybrid, measured by bench/int8.py),
                "torch" (sentence-transformers), or "auto" (ONNX when the index has it).
            threads: CPU threads for the ONNX query model (default: up to 4).
            engine: "local" (this process searches every part) or "ray" (the parts' vectors are
                loaded by Ray actors, ``shards`` of them, default one per CPU Ray offers; dense
                search fans out to them and merges their hits exactly).
            address: The Ray cluster to join ("auto": the one ``ray start`` began here); by
                default a local Ray instance is started.
            concurrent: Many threads will search at once (a server). The ONNX query model's
                threads then sleep while they wait instead of spinning: a lone query costs
                about 0.8 ms more (4.2 against 5.1 ms on 2 cores), but requests in parallel
                get the CPU (``semindex serve --int8`` at concurrency 8: 172 queries/s, against
                116 to 134 with spinning threads).
            mapped: Few queries will be asked (as ``semindex search QUERY`` asks one). The
                approximate-search files are then mapped, not read: opening costs almost
                nothing, and each query reads only what it probes. A process that keeps the
                index open should leave this off: its first queries would wait on the pages
                they touch (at 1M chunks, 26 ms a query's vector search against 2 ms).

        Raises:
            IndexNotFoundError: No index there.
            IndexCorruptError: A file of the index is missing, damaged or inconsistent.
            ModelMismatchError: ``model`` or ``embedder`` differs from the index's model.
        """
        if backend not in BACKENDS:
            raise QueryError(f"backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
        if engine not in ENGINES:
            raise QueryError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
        directory = index_location(path)
        manifest, parts = _open_version(directory, mapped)
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
        held = None
        if engine == "ray":
            from search.ray_engine import RayShards

            for attempt in range(3):
                try:
                    held = RayShards(directory, manifest, shards, address)
                    break
                except IndexCorruptError:
                    if attempt == 2 or IndexManifest.load(directory).version == manifest.version:
                        raise
                    manifest, parts = _open_version(directory, mapped)  # a new version came meanwhile
        return cls(directory, manifest, parts, embedder, model, backend, threads, held, concurrent)

    @property
    def embedder(self) -> Embedder:
        """The index's own model, loaded on first use: its ONNX export when the index has one
        (no torch needed), else the sentence-transformers model."""
        if self._embedder is None:
            with self._loading:
                if self._embedder is None:
                    self._embedder = self._load_embedder()
        return self._embedder

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Unit-length query vectors from the index's model. Safe from many threads at once:
        queries that arrive while the model is busy are embedded together in its next call."""
        if self._batcher is None:
            embedder = self.embedder
            with self._loading:
                if self._batcher is None:
                    self._batcher = QueryBatcher(embedder.embed_queries)
        return self._batcher(queries)

    def _load_embedder(self) -> Embedder:
        onnx = self._onnx_embedder() if self._backend != "torch" else None
        embedder: OnnxQueryEmbedder | SentenceTransformerEmbedder = (
            onnx if onnx is not None else load_embedder(self._model or self.manifest.model_name)
        )
        if embedder.dimension != self.manifest.dimension:
            raise ModelMismatchError(
                f"model {embedder.name} makes {embedder.dimension}-dimensional vectors, the index "
                f"holds {self.manifest.dimension}; {REBUILD_HINT}"
            )
        prefix = self.manifest.model.get("query_prefix")
        if isinstance(prefix, str) and prefix != embedder.query_prefix:
            embedder = embedder.with_query_prefix(prefix)  # query the index the way it was built
        return embedder

    def _onnx_embedder(self) -> OnnxQueryEmbedder | None:
        facts = self.manifest.query_model
        model = self.manifest.model
        if not query_model_files(facts) or self._model not in (None, self.manifest.model_name):
            if self._backend in ONNX_BACKENDS:
                raise ModelError(f"the index at {self.directory} has no ONNX query model; {ONNX_HINT}")
            return None
        assert facts is not None
        try:
            return OnnxQueryEmbedder(
                self.directory,
                facts,
                self.manifest.model_name,
                self.manifest.dimension,
                str(model.get("query_prefix") or ""),
                threads=self._threads,
                document_prefix=str(model.get("document_prefix") or ""),
                quantized=self._backend == "onnx-int8",
                spinning=not self._concurrent,
            )
        except ImportError as exc:
            problem = f"onnxruntime is not installed ({exc})"
        except Exception as exc:  # onnxruntime reports a damaged or missing file in its own types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            problem = f"the ONNX query model of {self.directory} cannot be used ({first})"
        if self._backend in ONNX_BACKENDS:
            raise ModelError(f"{problem}; {ONNX_HINT}")
        warnings.warn(f"{problem}; loading the model with torch instead", SemindexWarning, stacklevel=4)
        return None

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

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str | None = None,
        *,
        per_doc: int | None = 1,
        path: str | Sequence[str] | None = None,
        ext: str | Sequence[str] | None = None,
        modified_after: datetime | str | None = None,
        modified_before: datetime | str | None = None,
        where: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[SearchResult]:
        """The best matches for ``query``, best first.

        Args:
            query: What to search for, in your own words.
            k: How many results: documents when grouped (``per_doc``), chunks otherwise.
            mode: ``hybrid`` (the default: meaning and keywords fused), ``dense`` (cosine
                similarity of embeddings only) or ``keyword`` (BM25 only).
            per_doc: Chunks shown per document (1: the best chunk of each of ``k`` documents);
                None returns raw chunk hits. Identical chunks appear once either way, with the
                other places they occur in ``duplicates``.
            path: Only documents whose path matches these gitignore-style patterns.
            ext: Only documents with these extensions (``md``, ``.py``).
            modified_after: Only documents modified at or after this moment (or ISO date).
            modified_before: Only documents modified before this moment (or ISO date).
            where: Column → value, list of values, or predicate, on any chunk column
                (docs/format.md), e.g. ``{"record": "d17"}`` or ``{"page": lambda p: p and p < 5}``.
            min_score: Drop hits below this: the cosine in dense and hybrid mode, BM25 in keyword mode.

        Filters apply before ranking, so ``k`` results come back whenever ``k`` match.
        """
        return self.search_many(
            [query],
            k,
            mode,
            per_doc=per_doc,
            path=path,
            ext=ext,
            modified_after=modified_after,
            modified_before=modified_before,
            where=where,
            min_score=min_score,
        )[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        mode: str | None = None,
        *,
        per_doc: int | None = 1,
        path: str | Sequence[str] | None = None,
        ext: str | Sequence[str] | None = None,
        modified_after: datetime | str | None = None,
        modified_before: datetime | str | None = None,
        where: dict[str, Any] | None = None,
        min_score: float | None = None,
    ) -> list[list[SearchResult]]:
        """``search`` for several queries at once (their embeddings are computed in one batch)."""
        if isinstance(queries, str):
            raise QueryError("search_many takes a list of queries; use search() for one")
        _check_k(k)
        if per_doc is not None and (isinstance(per_doc, bool) or not isinstance(per_doc, int) or per_doc < 1):
            raise QueryError(f"per_doc must be a whole number of at least 1, or None (got {per_doc!r})")
        mode = self._mode(mode)
        for number, query in enumerate(queries, start=1):
            check_query(query, number if len(queries) > 1 else None)
        filters = _filters(path, ext, modified_after, modified_before, where)
        if not queries or len(self) == 0:
            return [[] for _ in queries]
        masks = self._masks(filters)
        if masks is not None and not any(m is None or m.any() for m in masks):
            return [[] for _ in queries]  # nothing passes the filters
        vectors = None if mode == "keyword" else self._normalised(self.embed_queries(list(queries)))
        out = []
        for number, query in enumerate(queries):
            vector = vectors[number] if vectors is not None else None
            out.append(self._search_one(query, vector, int(k), mode, per_doc, masks, min_score))
        return out

    def search_vectors(self, vectors: np.ndarray, k: int = 10) -> list[list[SearchResult]]:
        """Dense search with query vectors already made (rows are normalised here): raw chunk hits."""
        _check_k(k)
        vectors = self._normalised(vectors)
        if len(self) == 0:
            return [[] for _ in range(len(vectors))]
        return [self._search_one(None, vector, int(k), "dense", None, None, None) for vector in vectors]

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
            with self._loading:
                if self._keyword is None:
                    self._keyword = KeywordSearcher([p for p in parts if p is not None], terms)
        return self._keyword

    def _columns(self, part: int) -> PartColumns:
        if part not in self._column_cache:
            self._column_cache[part] = PartColumns(self._parts[part].rows)
        return self._column_cache[part]

    def _masks(self, filters: Filters) -> list[np.ndarray | None] | None:
        if not filters:
            return None
        times = self._file_mtimes() if filters.modified_after or filters.modified_before else None
        return [mask(self._columns(number), filters, times) for number in range(len(self._parts))]

    def _file_mtimes(self) -> dict[str, int]:
        """Each indexed file's modification time (microseconds) from the file table."""
        if self._mtimes is None:
            try:
                entries = read_file_table(self.directory, self.manifest)
            except (SemindexError, OSError):
                entries = {}  # the rows' own times are used
            self._mtimes = {path: entry.mtime_us for path, entry in entries.items()}
        return self._mtimes

    def _ranked(
        self, query: str | None, vector: np.ndarray | None, depth: int, mode: str, masks: Masks
    ) -> list[tuple[Key, dict[str, Any]]]:
        """Candidates best first, each with its score and what each ranking said of it."""
        depth = min(depth, len(self))
        if mode == "dense":
            assert vector is not None
            (hits,) = self._dense(vector[None, :], depth, masks)
            return [
                ((p, r), {"score": _clip(s), "mode": "dense", "cosine": _clip(s), "dense_rank": rank})
                for rank, (s, p, r) in enumerate(hits, start=1)
            ]
        assert query is not None
        scores = self.keyword.scores(query)
        if mode == "keyword":
            return [
                ((p, r), {"score": s, "mode": "keyword", "keyword_score": s, "keyword_rank": rank})
                for rank, (s, p, r) in enumerate(scores.top(depth, masks), start=1)
            ]
        assert vector is not None
        (dense,) = self._dense(vector[None, :], depth, masks)
        keyword = scores.top(depth, masks)
        similarities = {(p, r): s for s, p, r in dense}
        similarities |= cosines(
            self._parts, vector, [(p, r) for _, p, r in keyword if (p, r) not in similarities]
        )
        out = []
        for hit in reciprocal_rank_fusion(dense, keyword):
            key = (hit.part, hit.row)
            similarity = similarities[key]
            facts = {
                "score": hit.score,
                "mode": "hybrid",
                "cosine": _clip(similarity),
                "keyword_score": scores.score(hit.part, hit.row),
                "dense_rank": hit.dense_rank,
                "keyword_rank": hit.keyword_rank,
            }
            out.append((key, facts))
        return out

    def _dense(self, vectors: np.ndarray, depth: int, masks: Masks) -> list[list[Hit]]:
        if self._shards is not None:
            return self._shards.dense_hits(vectors, depth, masks)
        return dense_hits(self._parts, vectors, depth, masks)

    def _search_one(
        self,
        query: str | None,
        vector: np.ndarray | None,
        k: int,
        mode: str,
        per_doc: int | None,
        masks: Masks,
        min_score: float | None,
    ) -> list[SearchResult]:
        wanted = k * (per_doc or 1)
        depth = max(HYBRID_DEPTH if mode == "hybrid" else 0, 4 * wanted if per_doc else k)
        while True:
            ranked = self._ranked(query, vector, depth, mode, masks)
            if min_score is not None:
                field = "keyword_score" if mode == "keyword" else "cosine"
                ranked = [c for c in ranked if c[1][field] is not None and c[1][field] >= min_score]
            # The best candidates are most likely shown: their whole rows are read now, once
            # and side by side across parts, and grouping takes their identities from them.
            fetch_rows(self._parts, [key for key, _ in ranked[:wanted]])
            groups = select(ranked, k, per_doc, self._identity)
            if len(groups) >= k or depth >= len(self) or (len(ranked) < depth and min_score is None):
                break
            depth *= 4  # grouping or duplicates used up the candidates: read deeper
        return self._results(query, groups)

    def _identity(self, key: Key) -> tuple[str, str]:
        """A candidate's document and content hash (for grouping and duplicates); each record of
        a record file is a document of its own."""
        path, record, content_hash = self._parts[key[0]].rows.identity(key[1])
        return (path if record is None else f"{path}#{record}"), content_hash

    def _results(self, query: str | None, groups: list[Selected]) -> list[SearchResult]:
        keys = [s.key for s in groups] + [d for s in groups for d in s.duplicates]
        rows = fetch_rows(self._parts, keys)
        terms: set[str] = set()
        idf: dict[str, float] = {}
        analyzer = None
        if query is not None and all(p.keywords is not None for p in self._parts):
            analyzer = self.keyword.analyzer
            terms = set(self.keyword.query_terms(query))
            idf = {term: self.keyword.idf(term) for term in terms}  # once per query, not per sentence
        out = []
        for rank, chosen in enumerate(groups, start=1):
            row = rows[chosen.key]
            extra: dict[str, Any] = dict(chosen.facts)
            extra["duplicates"] = [_place(rows[d]) for d in chosen.duplicates]
            piece = make_snippet(row["text"], terms, analyzer, idf.__getitem__)
            extra["snippet"], extra["highlights"] = piece.text, [list(span) for span in piece.highlights]
            extra["line"] = int(row["start_line"]) + row["text"].count("\n", 0, piece.start)
            out.append(result_from_row(rank, row, **extra))
        return out

    def document(self, path: str, chunk: int | None = None) -> dict[str, Any]:
        """A document of the index, read again: its extracted text and where each chunk lies.

        Only a path the file table lists as indexed is read, and only inside the indexed folder
        (links leading out of it are refused), so no other file can be reached through this.
        With ``chunk``, ``highlight`` gives that chunk's ``char_start`` and ``char_end``.

        Raises:
            QueryError: The index holds no such document, or it cannot be shown.
        """
        from indexer.extract import extract_file
        from indexer.records import Document, SourceFile

        entries = read_file_table(self.directory, self.manifest)
        entry = entries.get(path)
        if entry is None or entry.status != "indexed" or not self.manifest.root:
            raise QueryError("the index holds no such document")
        positions = self._chunk_positions(path)
        if any(p["record"] is not None for p in positions):
            raise QueryError("that is a record file; its records are shown one by one in results")
        root = Path(self.manifest.root).resolve()
        absolute = (root / path).resolve()
        if not absolute.is_relative_to(root) or not absolute.is_file():
            raise QueryError("the document is no longer in the indexed folder")
        stat = absolute.stat()
        source = SourceFile(path, absolute, stat.st_size, stat.st_mtime)
        limit = int(self.manifest.extraction.get("max_file_size", 50 * 1024 * 1024))
        document = extract_file(source, limit)
        if not isinstance(document, Document):
            raise QueryError(f"the document cannot be read now ({document.reason})")
        changed = not entry.same_stat(stat.st_size, stat.st_mtime)
        details: dict[str, Any] = {
            "path": path,
            "format": document.format,
            "title": document.title,
            "text": document.text,
            "chunks": positions,
            "changed_since_indexed": changed,
        }
        if chunk is not None:
            chosen = [c for c in positions if c["chunk"] == chunk]
            if not chosen:
                raise QueryError(f"the document has no chunk {chunk}")
            details["highlight"] = {"char_start": chosen[0]["char_start"], "char_end": chosen[0]["char_end"]}
        return details

    def _chunk_positions(self, path: str) -> list[dict[str, Any]]:
        out = []
        for number, part in enumerate(self._parts):
            paths = self._columns(number).column("path").to_pylist()
            rows = [row for row, value in enumerate(paths) if value == path]
            for row in part.rows.rows(rows):
                out.append(
                    {
                        k: row[k]
                        for k in (
                            "chunk",
                            "char_start",
                            "char_end",
                            "start_line",
                            "end_line",
                            "page",
                            "record",
                        )
                    }
                )
        return sorted(out, key=lambda c: c["chunk"])

    def info(self) -> IndexInfo:
        """Facts about the index: model, size, counts, creation time."""
        listed = [f for p in self.manifest.part_refs for f in p.files.values()]
        if self.manifest.file_table:
            listed.append(self.manifest.file_table)
        size = sum(int(f.get("bytes", 0)) for f in listed)
        query = self.manifest.query_model
        size += int(query.get("bytes", 0)) if query_model_files(query) and isinstance(query, dict) else 0
        faiss = dict(self.manifest.faiss)
        faiss["type"] = stored_type(faiss)
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
            faiss_type=str(faiss["type"]),
            chunking=dict(self.manifest.chunking),
            versions=dict(self.manifest.versions),
            faiss=faiss,
            query_model="onnx" if query_model_files(query) else "torch",
        )


def _open_version(
    directory: Path, mapped: bool = False, attempts: int = 5
) -> tuple[IndexManifest, list[OpenPart]]:
    """Read the manifest and open the parts it lists, all of one version.

    A writer deletes the files of the version it replaced just after switching; a reader that
    read the old manifest a moment before may find them gone. It then starts again from the new
    manifest, so it sees one version whole, never a mix.
    """
    for attempt in range(attempts):
        stamp = _manifest_stamp(directory)
        manifest = IndexManifest.load(directory)
        try:
            return manifest, open_parts(directory, manifest, mapped)
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


Key = tuple[int, int]  # (part number, row)
Masks = Optional[list[Optional[np.ndarray]]]


def _filters(
    path: str | Sequence[str] | None,
    ext: str | Sequence[str] | None,
    after: datetime | str | None,
    before: datetime | str | None,
    where: dict[str, Any] | None,
) -> Filters:
    def many(value: str | Sequence[str] | None) -> tuple[str, ...]:
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)

    def moment(value: datetime | str | None, option: str) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)
        return parse_moment(value, option)

    if where is not None and not isinstance(where, dict):
        raise QueryError(f"where must be a dict of column to value (got {type(where).__name__})")
    return Filters(
        many(path),
        many(ext),
        moment(after, "modified_after"),
        moment(before, "modified_before"),
        dict(where or {}),
    )


def _place(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": row["path"],
        "start_line": row["start_line"],
        "end_line": row["end_line"],
        "page": row.get("page"),
    }


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
