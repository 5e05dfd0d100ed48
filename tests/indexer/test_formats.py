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
        in pq.read_table(target / "chunks").to_pandas().query("path == 'reports/q2.docx'")["text"].str.cat()
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
    paths = set(pq.read_table(folder / ".semindex" / "chunks").column("path").to_pylist())
    assert paths == {"a.md", "b.txt", "keep.log", "deep/er/d.md"}
    config = BuildConfig(include=("*.md",), exclude=("deep/",))
    build_index(folder, embedder=embedder, config=config)
    paths = set(pq.read_table(folder / ".semindex" / "chunks").column("path").to_pylist())
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
    assert not (folder / ".semindex" / "build-journal.jsonl").exists()  # it listed no parts
    report = build_index(folder, embedder=embedder)
    assert [s.path for s in report.skipped if s.failed] == ["broken.pdf"]


def test_hostile_html_is_fast_and_keeps_content() -> None:
    """Guards against quadratic parsing (lone '<', deep skip stacks) and lost page bodies."""
    import time

    started = time.perf_counter()
    _, text = html_to_text("<html><body><p>" + "if x<y then y " * 10_000)
    html_to_text("<a" * 40_000)
    html_to_text("<nav>" * 50_000 + "</p>" * 50_000)
    assert time.perf_counter() - started < 5, "three pathological pages take well under a second each"
    assert text.count("x<y") == 10_000
    assert html_to_text("<html><head><title>Owls</title><body><p>Owls hunt mice.</p>")[1].endswith(
        "hunt mice."
    )
    assert html_to_text("<body><form><p>Inside a form.</p></form></body>")[1] == "Inside a form."


def test_long_heading_lines_are_linear() -> None:
    import time

    from indexer.headings import markdown_headings

    started = time.perf_counter()
    (heading,) = markdown_headings("# a" + " \t" * 5_000 + "b")
    assert time.perf_counter() - started < 1 and heading.title.startswith("a") and len(heading.title) <= 200
    assert [h.title for h in markdown_headings("## Title ##\n# x #y #\n")] == ["Title", "x #y"]


def test_docx_details_and_bombs(tmp_path: Path) -> None:
    import zipfile

    from indexer.errors import InputError
    from indexer.extract.docx import docx_text

    data = docx_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    xml = parts["word/document.xml"].decode()
    extra = (
        "<w:p><w:r><w:t>Name</w:t><w:tab/><w:t>Value</w:t><w:br/><w:t>next line</w:t></w:r></w:p>"
        "<!-- a comment --><w:sdt><w:sdtContent><w:p><w:r><w:t>Cover page text</w:t></w:r></w:p>"
        "</w:sdtContent></w:sdt>"
    )
    parts["word/document.xml"] = xml.replace("<w:body>", "<w:body>" + extra, 1).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    text = docx_text(buffer.getvalue(), 1 << 20)
    assert "Name\tValue\nnext line" in text and "Cover page text" in text and "Glacier melt" in text
    with pytest.raises(InputError, match="unpacks to"):
        docx_text(buffer.getvalue(), 100)


def test_bad_patterns_are_clear_errors(tmp_path: Path) -> None:
    from indexer.errors import InputError
    from indexer.walk import PathFilter

    for include, exclude in (((), ("!",)), (("[z-a]",), ())):
        with pytest.raises(InputError, match="invalid pattern"):
            PathFilter(tmp_path, include, exclude)


ODT_CONTENT = """<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"
 xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"
 xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.3">
<office:body><office:text>
<text:h text:outline-level="1">Beekeeping</text:h>
<text:h text:outline-level="2">Winter care</text:h>
<text:p>Bees cluster<text:s text:c="2"/>together and shiver to keep the queen warm.<office:annotation>
<text:p>reviewer remark</text:p></office:annotation></text:p>
<text:list><text:list-item><text:p>Leave enough <text:span>honey</text:span> in the hive.</text:p>
</text:list-item></text:list>
<table:table><table:table-row><table:table-cell><text:p>hive</text:p></table:table-cell>
<table:table-cell><text:p>weight<text:tab/>kg</text:p></table:table-cell></table:table-row></table:table>
</office:text></office:body></office:document-content>"""


def odt_bytes(content: str = ODT_CONTENT) -> bytes:
    """A minimal OpenDocument text file, laid out as LibreOffice writes one."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.text", zipfile.ZIP_STORED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        archive.writestr("META-INF/manifest.xml", "<manifest/>", zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def test_odt_text_headings_and_failures(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    from indexer.errors import InputError
    from indexer.extract.odt import odt_text

    text = odt_text(odt_bytes(), 1 << 20)
    assert text.startswith("# Beekeeping\n\n## Winter care\n\nBees cluster  together and shiver")
    assert "Leave enough honey in the hive." in text and "hive\tweight\tkg" in text
    assert "reviewer remark" not in text
    with pytest.raises(InputError, match="unpacks to"):
        odt_text(odt_bytes(), 100)
    entity_bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]><x>&a;</x>'
    folder = write_files(
        tmp_path / "d",
        {
            "hives.odt": odt_bytes(),
            "renamed.bin": odt_bytes(),  # found by its content, not its name
            "truncated.odt": odt_bytes()[:50],
            "bomb.odt": odt_bytes(entity_bomb),
        },
    )
    report = build_index(folder, embedder=embedder)
    reasons = {s.path: s.reason for s in report.skipped if s.failed}
    assert set(reasons) == {"truncated.odt", "bomb.odt"}
    assert reasons["truncated.odt"].startswith("unreadable .odt")
    index = Index.open(folder / ".semindex", embedder=embedder)
    hit = index.search("how do bees survive the cold months", k=1, per_doc=None)[0]
    assert hit.path in ("hives.odt", "renamed.bin")
    rows = pq.read_table(folder / ".semindex" / "chunks", columns=["path", "text"]).to_pylist()
    assert {r["path"]: r["text"][:28] for r in rows} == {
        "hives.odt": "# Beekeeping\n\n## Winter care",
        "renamed.bin": "# Beekeeping\n\n## Winter care",
    }


def test_front_matter_is_text_not_a_heading() -> None:
    from indexer.headings import markdown_headings

    text = "---\ntitle: Trip notes\ntags: [travel]\n---\n\n# Lisbon\n\nTrams.\n\nFood\n---\n\nPastries."
    assert [h.title for h in markdown_headings(text)] == ["Lisbon", "Food"]
    assert [h.title for h in markdown_headings("Intro line\n---\n\nBody")] == ["Intro line"]


def test_one_unreadable_pdf_page_keeps_the_others(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypdf import PageObject

    real = PageObject.extract_text

    def flaky(page: PageObject, *args: object, **kwargs: object) -> str:
        text = real(page, *args, **kwargs)
        if "page two" in text:
            raise KeyError("/Font")  # what pypdf raises on some broken resource dictionaries
        return text

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    folder = write_files(
        tmp_path / "d",
        {"book.pdf": make_pdf(["Lighthouses guide ships.", "page two", "Harbours shelter boats."])},
    )
    report = build_index(folder, embedder=embedder)
    notes = {s.path: (s.reason, s.failed) for s in report.skipped}
    assert notes == {"book.pdf#page=2": ("unreadable page (KeyError: '/Font')", True)}
    assert report.files_indexed == 1
    pages = pq.read_table(folder / ".semindex" / "chunks", columns=["page"]).column("page").to_pylist()
    assert pages == [1, 3]
    with pytest.raises(StrictModeError, match=r"book\.pdf#page=2"):
        build_index(folder, embedder=embedder, config=BuildConfig(strict=True), rebuild=True)
