"""OpenDocument text (.odt): headings, paragraphs, lists and table rows in reading order.

An .odt file is a zip whose ``content.xml`` holds the text. It is parsed with lxml (already
installed for python-docx) with entities, DTDs and network access turned off.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from indexer.errors import InputError

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_CELL = f"{{{_TABLE}}}table-cell"
# Inside a paragraph: what is not part of the running text.
_SKIPPED = {f"{{{_OFFICE}}}annotation", f"{{{_TEXT}}}note-citation", f"{{{_TEXT}}}tracked-changes"}


def _inline(node: Any) -> Iterator[str]:
    """The running text of a paragraph or heading: spans, links, spaces, tabs, line breaks."""
    if node.text:
        yield node.text
    for child in node:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == f"{{{_TEXT}}}s":
            yield " " * int(child.get(f"{{{_TEXT}}}c", "1") or 1)
        elif tag == f"{{{_TEXT}}}tab":
            yield "\t"
        elif tag == f"{{{_TEXT}}}line-break":
            yield "\n"
        elif tag and tag not in _SKIPPED:
            yield from _inline(child)
        if child.tail:
            yield child.tail


def _blocks(parent: Any) -> Iterator[str]:
    """Text blocks under ``parent``; a heading becomes a Markdown-style ``#`` line."""
    for child in parent:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == f"{{{_TEXT}}}h":
            text = "".join(_inline(child)).strip()
            if text:
                level = int(child.get(f"{{{_TEXT}}}outline-level", "1") or 1)
                yield f"{'#' * max(1, min(level, 6))} {text}"
        elif tag == f"{{{_TEXT}}}p":
            text = "".join(_inline(child))
            if text.strip():
                yield text
        elif tag == f"{{{_TABLE}}}table-row":
            cells = [
                " ".join(_blocks(cell)).strip() for cell in child if cell.tag == f"{{{_TABLE}}}table-cell"
            ]
            if any(cells):
                yield "\t".join(cells)
        elif tag and tag not in _SKIPPED:
            yield from _blocks(child)  # sections, lists, list items, tables, frames, text boxes


def odt_text(data: bytes, max_uncompressed: int) -> str:
    """The document's text, one block per heading, paragraph or table row.

    Headings come out as ``# Title`` lines so chunks keep the section they belong to. Raises
    InputError for a file that is not a readable .odt, or whose text part unpacks to more than
    ``max_uncompressed`` bytes.
    """
    from lxml import etree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("content.xml")
            if info.file_size > max_uncompressed:
                raise InputError(
                    f".odt text unpacks to {info.file_size:,} bytes, "
                    f"over the --max-file-size limit ({max_uncompressed:,})"
                )
            content = archive.read(info)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise InputError(f"unreadable .odt ({type(exc).__name__}: {exc})") from exc
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"unreadable .odt (malformed content.xml: {exc})") from exc
    body = root.find(f"{{{_OFFICE}}}body")
    if body is None:
        raise InputError("unreadable .odt (content.xml has no office:body)")
    return "\n\n".join(_blocks(body))
