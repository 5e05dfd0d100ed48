"""``semindex mcp``: the tools over stdio, as an assistant would call them, with the real model."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from search import Index
from tests.conftest import write_files

mcp = pytest.importorskip("mcp", reason="the mcp SDK is not installed")

FILES = {
    "bees.md": "# Bees\n\nHoneybees find flowers by scent and by the waggle dance of their sisters.",
    "tides.txt": "The moon's gravity pulls the oceans, which makes the tides rise and fall twice a day.",
}


def _calls(target: Path) -> dict[str, Any]:
    """Start ``semindex mcp`` as a subprocess and make the calls an assistant would."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    command = StdioServerParameters(
        command=sys.executable, args=["-m", "cli", "mcp", "--index", str(target), "--threads", "1"]
    )
    out: dict[str, Any] = {}

    async def session() -> None:
        async with Client(command, read_timeout_seconds=60) as client:
            out["tools"] = {t.name: t for t in (await client.list_tools()).tools}
            out["search"] = await client.call_tool("search", {"query": "why does the sea rise", "k": 2})
            out["keyword"] = await client.call_tool("search", {"query": "waggle", "mode": "keyword"})
            out["info"] = await client.call_tool("info", {})
            out["document"] = await client.call_tool("document", {"path": "tides.txt", "chunk": 0})
            out["empty"] = await client.call_tool("search", {"query": "   "})
            out["mode"] = await client.call_tool("search", {"query": "bees", "mode": "fuzzy"})
            out["k"] = await client.call_tool("search", {"query": "bees", "k": 1000})
            out["outside"] = await client.call_tool("document", {"path": "../../etc/passwd"})

    anyio.run(session)
    return out


def test_mcp_tools_over_stdio(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "docs", FILES)
    build_index(folder, embedder=embedder)
    target = folder / ".semindex"
    out = _calls(target)

    assert set(out["tools"]) == {"search", "info", "document"}
    assert "query" in out["tools"]["search"].input_schema["required"]

    found = out["search"]
    assert not found.is_error
    results = found.structured_content["results"]
    expected = Index.open(target, embedder=embedder).search("why does the sea rise", k=2)
    assert [r["path"] for r in results] == [h.path for h in expected] and results[0]["path"] == "tides.txt"
    assert [r["cosine"] for r in results] == pytest.approx([h.cosine for h in expected], abs=1e-4)
    assert json.loads(found.content[0].text)["results"][0]["path"] == "tides.txt"  # text for the model too
    assert [r["path"] for r in out["keyword"].structured_content["results"]] == ["bees.md"]

    info = out["info"].structured_content
    assert info["chunks"] == 2 and info["documents"] == 2 and info["model"].endswith("all-MiniLM-L6-v2")
    document = out["document"].structured_content
    assert document["text"].startswith("The moon's gravity") and document["highlight"]["char_start"] == 0

    for name, wanted in (("empty", "empty"), ("mode", "mode"), ("k", "less than or equal"),
                         ("outside", "no such document")):  # fmt: skip
        answer = out[name]
        assert answer.is_error and wanted in answer.content[0].text, (name, answer.content)
        assert "Traceback" not in answer.content[0].text
