"""The HTTP API over one index: FastAPI, loaded once, switching to new versions as they appear.

``create_app`` returns the ASGI application ``semindex serve`` runs on uvicorn. Responses use
the fields of ``semindex search --json``. Requests run in parallel (FastAPI runs these plain
functions in its thread pool); an update written by ``semindex index`` or ``watch`` is picked
up without a restart: requests already running finish on the version they started with.
"""

from __future__ import annotations

import hmac
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from indexer.errors import QueryError, SemindexError
from indexer.manifest import MANIFEST_FILE
from search import Index
from search.index import MAX_QUERY_CHARS, MODES, index_location

MAX_K = 100
MAX_QUERIES = 64
MAX_BODY_BYTES = 1 << 20
RELOAD_CHECK_SECONDS = 0.5  # how often a request may look for a newer version on disk


class SearchRequest(BaseModel):
    """Several queries at once, with the options of ``GET /api/search``."""

    queries: list[str] = Field(min_length=1, max_length=MAX_QUERIES)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: str | None = None
    path: list[str] = Field(default_factory=list)
    ext: list[str] = Field(default_factory=list)


class CurrentIndex:
    """The index being served: reopened when ``manifest.json`` changes, the model kept."""

    def __init__(self, directory: Path, model: str | None = None) -> None:
        self.directory = directory
        self._model = model
        self._lock = threading.Lock()
        self._stamp = self._manifest_stamp()
        self._index = Index.open(directory, model=model)
        self._checked = time.monotonic()

    def _manifest_stamp(self) -> tuple[int, int, int]:
        stat = (self.directory / MANIFEST_FILE).stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def get(self) -> Index:
        """The newest version on disk (checked at most every ``RELOAD_CHECK_SECONDS``)."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return self._index
        with self._lock:
            self._checked = now
            try:
                stamp = self._manifest_stamp()
            except OSError:
                return self._index  # mid-switch or gone: keep serving what is open
            if stamp != self._stamp:
                fresh = Index.open(self.directory, model=self._model, embedder=self._index.embedder)
                self._index, self._stamp = fresh, stamp
            return self._index


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    index_dir: str | Path | None = None, *, token: str | None = None, model: str | None = None
) -> FastAPI:
    """The API over the index at ``index_dir`` (default: the nearest ``.semindex``).

    With ``token``, every ``/api`` request needs ``Authorization: Bearer <token>``.
    """
    current = CurrentIndex(index_location(index_dir), model)
    app = FastAPI(title="semindex", summary="Search an index by meaning and keywords.", version="0.1.0")

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/api"):
            if token is not None:
                given = request.headers.get("authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return _error(401, "missing or wrong token: send 'Authorization: Bearer <token>'")
            length = request.headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                return _error(413, f"request body over {MAX_BODY_BYTES:,} bytes")
        try:
            return await call_next(request)
        except Exception:  # never a traceback or a path in a response
            return _error(500, "internal error; see the server's log")

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, exc: QueryError) -> JSONResponse:
        status = 404 if request.url.path.startswith("/api/documents/") else 400
        return _error(status, str(exc))

    @app.exception_handler(SemindexError)
    async def index_error(request: Request, exc: SemindexError) -> JSONResponse:
        return _error(503, "the index cannot be read right now; check it with: semindex verify")

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """Whether the server can answer, and which version of the index it reads."""
        index = current.get()
        return {"status": "ok", "version": index.version, "chunks": len(index)}

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        """The index's model, counts, size and settings (as ``semindex info --json``)."""
        details = current.get().info().to_dict()
        details.pop("path", None)  # no file-system paths in responses
        return details

    @app.get("/api/search")
    def search_get(
        q: str = Query(..., max_length=MAX_QUERY_CHARS, description="What to search for."),
        k: int = Query(10, ge=1, le=MAX_K),
        mode: str | None = Query(None, description=f"One of {', '.join(MODES)} (default hybrid)."),
        path: list[str] = Query(default_factory=list),
        ext: list[str] = Query(default_factory=list),
    ) -> dict[str, Any]:
        """The best chunks for one query, with the fields of ``semindex search --json``."""
        index = current.get()
        hits = index.search(q, k=k, mode=mode, path=path or None, ext=ext or None)
        return {"query": q, "version": index.version, "results": [h.to_dict() for h in hits]}

    @app.get("/api/documents/{path:path}")
    def document(path: str, chunk: int | None = Query(None, ge=0)) -> dict[str, Any]:
        """A document's extracted text and its chunks' offsets; ``chunk`` picks the one to show."""
        details = current.get().document(path)
        if chunk is not None:
            chosen = [c for c in details["chunks"] if c["chunk"] == chunk]
            if not chosen:
                raise QueryError(f"the document has no chunk {chunk}")
            details["highlight"] = {"char_start": chosen[0]["char_start"], "char_end": chosen[0]["char_end"]}
        return details

    @app.post("/api/search")
    def search_post(body: SearchRequest) -> dict[str, Any]:
        """Several queries at once (embedded in one batch)."""
        for text in body.queries:
            if len(text) > MAX_QUERY_CHARS:
                raise QueryError(f"a query is longer than {MAX_QUERY_CHARS:,} characters")
        index = current.get()
        answers = index.search_many(
            body.queries, k=body.k, mode=body.mode, path=body.path or None, ext=body.ext or None
        )
        return {
            "version": index.version,
            "results": [
                {"query": q, "results": [h.to_dict() for h in hits]}
                for q, hits in zip(body.queries, answers, strict=True)
            ],
        }

    return app
