"""``semindex mcp``: an index as tools for AI assistants, over the Model Context Protocol (stdio).

The tools are ``search``, ``info`` and ``document``; each answers with the same fields as the
HTTP API, except that ``info`` also gives the index's folder (``path``): an assistant speaking
to this process over stdio runs on this machine, for its user. The index and model are loaded
once, and a new version on disk is picked up between calls. Expected failures (an empty
query, an unknown mode, a document the index does not hold) come back as tool errors the
assistant can read; nothing is printed on stdout, which carries the protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from indexer.errors import QueryError, SemindexError
from search.index import MAX_QUERY_CHARS, MODES, index_location
from server.current import CurrentIndex

MAX_K = 100

INSTRUCTIONS = (
    "Search the user's indexed documents by meaning and keywords. Call `search` with a question "
    "or a phrase; each result gives the document's path, its line or page, a snippet and the "
    "chunk's text. Call `document` with a result's path and chunk to read the whole document, "
    "and `info` for what the index holds."
)


def _answer(call: Any) -> Any:
    try:
        return call()
    except QueryError as exc:
        raise ToolError(str(exc)) from exc
    except SemindexError as exc:
        raise ToolError(
            f"the index cannot be read right now ({exc}); check it with: semindex verify"
        ) from exc


def create_mcp_server(
    index_dir: str | Path | None = None, *, model: str | None = None, backend: str = "auto"
) -> MCPServer:
    """An MCP server with the tools ``search``, ``info`` and ``document`` over one index."""
    current = CurrentIndex(index_location(index_dir), model, backend)
    server = MCPServer(name="semindex", instructions=INSTRUCTIONS, version="0.1.0")

    @server.tool()
    def search(
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS, description="What to look for, in words.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many results.")] = 10,
        mode: Annotated[
            str | None, Field(description=f"One of {', '.join(MODES)}; hybrid (the default) is best.")
        ] = None,
        path: Annotated[
            list[str] | None, Field(description="Only documents matching these gitignore-style patterns.")
        ] = None,
        ext: Annotated[list[str] | None, Field(description="Only documents with these extensions.")] = None,
    ) -> dict[str, Any]:
        """Search the index: the chunks of documents that best match the query, best first."""
        index = current.get()
        hits = _answer(lambda: index.search(query, k=k, mode=mode, path=path or None, ext=ext or None))
        return {"query": query, "version": index.version, "results": [h.to_dict() for h in hits]}

    @server.tool()
    def info() -> dict[str, Any]:
        """What the index holds: model, documents, chunks, size, version and settings."""
        return _answer(lambda: current.get().info().to_dict())

    @server.tool()
    def document(
        path: Annotated[str, Field(description="A result's path, relative to the indexed folder.")],
        chunk: Annotated[int | None, Field(ge=0, description="A result's chunk, to get its offsets.")] = None,
    ) -> dict[str, Any]:
        """A whole indexed document as text, with each chunk's offsets (and the chosen chunk's)."""
        return _answer(lambda: current.get().document(path, chunk))

    return server
