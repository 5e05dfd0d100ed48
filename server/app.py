"""The HTTP API over one index: FastAPI, loaded once, switching to new versions as they appear.

``create_app`` returns the ASGI application ``semindex serve`` runs on uvicorn. Responses use
the fields of ``semindex search --json``. Requests run in parallel (FastAPI runs these plain
functions in its thread pool); an update written by ``semindex index`` or ``watch`` is picked
up without a restart: requests already running finish on the version they started with.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Optional

import anyio.to_thread
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.errors import QueryError, SemindexError
from search.index import MAX_QUERY_CHARS, MODES, index_location
from server.current import CurrentIndex

LOG = logging.getLogger("semindex.server")
MAX_K = 100
PARALLEL_REQUESTS = 4
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_QUERIES = 64
MAX_BODY_BYTES = 1 << 20
STATIC = Path(__file__).resolve().parent / "static"
PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
# The page loads nothing but its own files and talks to nothing but this server.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class SearchRequest(BaseModel):
    """Several queries at once, with the options of ``GET /api/search``."""

    queries: list[str] = Field(min_length=1, max_length=MAX_QUERIES)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: str | None = None
    path: list[str] = []  # pydantic copies a default for each request
    ext: list[str] = []


class _BodyTooLarge(BaseException):  # not Exception: FastAPI turns those into 400s while reading a body
    pass


class Guard:
    """ASGI middleware: the token and body-size rules on ``/api``, and no traceback or path in
    any response (an unexpected error is logged and answered with a plain 500).

    A plain ASGI class, not ``@app.middleware``: Starlette's BaseHTTPMiddleware runs every
    request through extra tasks and streams, and under load the event loop's thread spent
    more time there than anywhere else.
    """

    def __init__(self, app: Any, token: str | None = None, hosts: Sequence[str] | None = None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token is not None else None
        self.hosts = {h.lower().strip("[]") for h in hosts} if hosts is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.hosts is not None and _host_name(dict(scope["headers"]).get(b"host", b"")) not in self.hosts:
            # A web page whose name was pointed at 127.0.0.1 (DNS rebinding) sends its own name.
            message = "unexpected Host header; open the address semindex serve printed"
            return await _error(400, message)(scope, receive, send)
        if scope["path"].startswith("/api"):
            headers = dict(scope["headers"])
            if self.expected is not None:
                given = headers.get(b"authorization", b"")
                if not hmac.compare_digest(given, self.expected):
                    message = "missing or wrong token: send 'Authorization: Bearer <token>'"
                    return await _error(401, message)(scope, receive, send)
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                return await _error(413, f"request body over {MAX_BODY_BYTES:,} bytes")(scope, receive, send)
            receive = _capped(receive)
        started = False

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except _BodyTooLarge:
            if not started:
                await _error(413, f"request body over {MAX_BODY_BYTES:,} bytes")(scope, receive, send)
        except Exception:
            LOG.exception("error answering %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _error(500, "internal error; see the server's log")(scope, receive, send)


def _host_name(header: bytes) -> str:
    """The name in a Host header, without the port (``[::1]:8765`` → ``::1``)."""
    host = header.decode("latin-1").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _capped(receive: Any) -> Any:
    """``receive`` that stops a body (sent without Content-Length) once it passes the cap."""
    seen = 0

    async def capped() -> Any:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > MAX_BODY_BYTES:
                raise _BodyTooLarge
        return message

    return capped


def _first_problem(exc: RequestValidationError) -> str:
    """One line for a request FastAPI rejected: where and what, never the input echoed back."""
    problems = exc.errors()
    if not problems:
        return "invalid request"
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body", "path"))
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "missing":
        message = "is required"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where or 'request'}: {message}{more}"


def _json(content: dict[str, Any]) -> Any:
    """A JSON response of plain values, serialised once (FastAPI's generic encoder walks every
    value of a result list again: a millisecond a request)."""
    return JSONResponse(content)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    index_dir: str | Path | None = None,
    *,
    token: str | None = None,
    model: str | None = None,
    backend: str = "auto",
    parallel: int = PARALLEL_REQUESTS,
    hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The API over the index at ``index_dir`` (default: the nearest ``.semindex``).

    With ``token``, every ``/api`` request needs ``Authorization: Bearer <token>``; ``backend``
    is how queries are embedded (``Index.open``'s); ``parallel`` caps the requests answered at
    once (more wait their turn); ``hosts``, when given, are the only names accepted in the
    Host header (``semindex serve`` on a loopback address accepts ``LOCAL_HOSTS`` only, so a web
    page cannot reach the index through DNS rebinding).
    """
    current = CurrentIndex(index_location(index_dir), model, backend)

    # FastAPIOffline serves /docs and /redoc from files in its package: no CDN, works offline.
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Requests run in at most this many threads at once; the rest wait in the event loop.
        # More threads only fight over the GIL (SciFact, 2 cores, concurrency 8: 142 queries/s
        # with 4 threads, 100 with anyio's default 40).
        anyio.to_thread.current_default_thread_limiter().total_tokens = parallel
        yield

    app = FastAPIOffline(
        title="semindex",
        summary="Search an index by meaning and keywords.",
        version="0.1.0",
        lifespan=lifespan,
    )

    app.add_middleware(Guard, token=token, hosts=hosts)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "invalid request"
        if exc.status_code == 404:
            detail = "no such address; the API is under /api (see /docs)"
        response = _error(exc.status_code, detail.rstrip(".").lower() if detail[:1].isupper() else detail)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _first_problem(exc))

    @app.exception_handler(QueryError)
    async def bad_query(request: Request, exc: QueryError) -> JSONResponse:
        status = 404 if request.url.path.startswith("/api/documents/") else 400
        return _error(status, str(exc))

    @app.exception_handler(SemindexError)
    async def index_error(request: Request, exc: SemindexError) -> JSONResponse:
        return _error(503, "the index cannot be read right now; check it with: semindex verify")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        """The search page: results as you type, filters, and a document view."""
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def page_file(name: str) -> Any:
        if name not in PAGE_FILES:  # a fixed list: nothing else on disk is served
            return _error(404, "no such file")
        return FileResponse(STATIC / name, media_type=PAGE_FILES[name], headers=PAGE_HEADERS)

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
        # None, not default_factory=list: pydantic inspects a factory's signature on every
        # request, which took a third of the event loop's time under load.
        path: Optional[list[str]] = Query(None),
        ext: Optional[list[str]] = Query(None),
    ) -> dict[str, Any]:
        """The best chunks for one query, with the fields of ``semindex search --json``."""
        index = current.get()
        hits = index.search(q, k=k, mode=mode, path=path or None, ext=ext or None)
        return _json({"query": q, "version": index.version, "results": [h.to_dict() for h in hits]})

    @app.get("/api/documents/{path:path}")
    def document(path: str, chunk: int | None = Query(None, ge=0)) -> dict[str, Any]:
        """A document's extracted text and its chunks' offsets; ``chunk`` picks the one to show."""
        return current.get().document(path, chunk)

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
        return _json(
            {
                "version": index.version,
                "results": [
                    {"query": q, "results": [h.to_dict() for h in hits]}
                    for q, hits in zip(body.queries, answers, strict=True)
                ],
            }
        )

    return app


WORKER_CONFIG = "SEMINDEX_SERVE_CONFIG"  # how ``semindex serve --workers N`` configures its workers


def app_from_environment() -> FastAPI:
    """The app one worker process of ``semindex serve --workers N`` runs (a uvicorn factory):
    the settings come from the parent in ``$SEMINDEX_SERVE_CONFIG``, as JSON."""
    from indexer.threads import set_threads

    config = json.loads(os.environ[WORKER_CONFIG])
    set_threads(config.get("threads"))
    return create_app(
        config["index"],
        token=config.get("token"),
        model=config.get("model"),
        backend=config["backend"],
        hosts=config.get("hosts"),
    )
