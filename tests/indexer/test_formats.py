"""Ingesting real folders: HTML, PDF and .docx, include/exclude rules, failures isolated."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import StrictModeError
from indexer.extract.html import html_to_text
from search import Index
from tests.conftest import write_files
from tests.pdfgen import make_pdf

MakeIndex = Callable[[dict[str, str | bytes]], Path]

PAGE = """<!doctype html><html><head><title>Tide Pools</title><style>body{color:red}</style>
<script>trackVisitor("tide pools")</script></head><body>
<nav><a href="/">Home</a> <a href="/shop">Shop our sale</a></nav>
<header>Site banner</header>
<main><h1>Life in tide pools</h1><p>Sea anemones and hermit crabs survive
 the <b>daily</b> cycle of flooding and drying.</p><p>Starfish pry open mussels.</p></main>
<footer>Copyright 2024 Example Ltd</footer></body></html>"""


def docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Quarterly report", level=1)
    document.add_paragraph("Glacier melt raised the river level by two metres this spring.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "station", "level"
    table.cell(1, 0).text, table.cell(1, 1).text = "Innsbruck", "4.2 m"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_html_keeps_readable_text_only() -> None:
    title, text = html_to_text(PAGE)
    assert title == "Tide Pools"
    assert "Sea anemones and hermit crabs survive the daily cycle" in text
    for noise in ("trackVisitor", "color:red", "Shop our sale", "Site banner", "Copyright"):
        assert noise not in text


def test_formats_are_indexed_and_found(make_index: MakeIndex, embedder: SentenceTransformerEmbedder) -> None:
    target = make_index(
        {
            "web/tides.html": PAGE,
            "papers/leaves.pdf": make_pdf(
                ["Chlorophyll absorbs red and blue light.", "", "Stomata regulate water loss in leaves."]
            ),
            "reports/q2.docx": docx_bytes(),
            "notes.md": "# Knots\n\nA bowline makes a fixed loop at the end of a rope.",
        }
    )
    index = Index.open(target, embedder=embedder)
    assert index.search("hermit crabs and anemones", k=1)[0].path == "web/tides.html"
    stomata = index.search("how leaves control water loss", k=1)[0]
    assert (stomata.path, stomata.page) == ("papers/leaves.pdf", 3)
    assert index.search("chlorophyll light absorption", k=1)[0].page == 1
    glacier = index.search("river level after glacier melt", k=1)[0]
    assert (
        glacier.path == "reports/q2.docx"
        and "Innsbruck\t4.2 m"
        in pq.read_table(target / "chunks.parquet")
        .to_pandas()
        .query("path == 'reports/q2.docx'")["text"]
        .str.cat()
    )
    assert index.search("tying a rope loop", k=1)[0].path == "notes.md"


def test_pdf_problems_are_named(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(
        tmp_path / "d",
        {
            "scan.pdf": make_pdf(["", ""]),
            "broken.pdf": make_pdf(["Some text"])[:60],
            "mixed.pdf": make_pdf(["Real words on page one.", ""]),
            "ok.txt": "Plain text survives.",
        },
    )
    report = build_index(folder, embedder=embedder)
    reasons = {s.path: (s.reason, s.failed) for s in report.skipped}
    assert reasons["scan.pdf"] == ("no extractable text — scanned image?", False)
    assert reasons["mixed.pdf#page=2"] == ("no extractable text — scanned image?", False)
    assert reasons["broken.pdf"][0].startswith("unreadable PDF") and reasons["broken.pdf"][1]
    assert report.files_indexed == 2


def test_include_exclude_and_ignore_file(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(
        tmp_path / "d",
        {
            ".semindexignore": "drafts/\n*.log\n!keep.log\n",
            "a.md": "Alpha notes.",
            "b.txt": "Beta notes.",
            "drafts/c.md": "Draft notes.",
            "run.log": "log line",
            "keep.log": "kept log line",
            "deep/er/d.md": "Deep notes.",
        },
    )
    build_index(folder, embedder=embedder)
    paths = set(pq.read_table(folder / ".semindex" / "chunks.parquet").column("path").to_pylist())
    assert paths == {"a.md", "b.txt", "keep.log", "deep/er/d.md"}
    config = BuildConfig(include=("*.md",), exclude=("deep/",))
    build_index(folder, embedder=embedder, config=config)
    paths = set(pq.read_table(folder / ".semindex" / "chunks.parquet").column("path").to_pylist())
    assert paths == {"a.md"}


def test_strict_mode_stops_at_a_failure_and_keeps_the_old_index(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "d", {"ok.txt": "Fine text."})
    build_index(folder, embedder=embedder)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(StrictModeError, match=r"broken\.pdf"):
        build_index(folder, embedder=embedder, config=BuildConfig(strict=True))
    assert Index.open(folder / ".semindex", embedder=embedder).search("fine", k=5)[0].path == "ok.txt"
    report = build_index(folder, embedder=embedder)
    assert [s.path for s in report.skipped if s.failed] == ["broken.pdf"]
