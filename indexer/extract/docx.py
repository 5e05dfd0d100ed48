"""Word documents (.docx): paragraphs and table rows in reading order (python-docx)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from typing import Any

from indexer.errors import InputError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _local(node: Any) -> str:
    """An element's tag without its namespace; '' for comments and processing instructions."""
    tag = node.tag
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _run_text(node: Any) -> Iterator[str]:
    for part in node.iter():
        name = _local(part)
        if name == "t":
            yield part.text or ""
        elif name == "tab":
            yield "\t"
        elif name in ("br", "cr"):
            yield "\n"


def _blocks(parent: Any) -> Iterator[str]:
    """Text blocks under ``parent``: paragraphs, table rows, and content controls' contents."""
    for child in parent.iterchildren():
        name = _local(child)
        if name == "p":
            text = "".join(_run_text(child))
            if text.strip():
                yield text
        elif name == "tbl":
            for row in child.iterchildren(f"{_W}tr"):
                cells = [" ".join(_blocks(cell)).strip() for cell in row.iterchildren(f"{_W}tc")]
                if any(cells):
                    yield "\t".join(cells)
        elif name in ("sdt", "sdtContent", "customXml", "smartTag"):
            yield from _blocks(child)


def docx_text(data: bytes, max_uncompressed: int) -> str:
    """The document's text, one block per paragraph or table row.

    Raises InputError for a file that is not a readable .docx, or whose main part unpacks to
    more than ``max_uncompressed`` bytes (a zip bomb would otherwise exhaust memory).
    """
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            size = archive.getinfo("word/document.xml").file_size
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"unreadable .docx ({type(exc).__name__}: {exc})") from exc
    if size > max_uncompressed:
        raise InputError(
            f".docx text unpacks to {size:,} bytes, over the --max-file-size limit ({max_uncompressed:,})"
        )
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"unreadable .docx ({type(exc).__name__}: {exc})") from exc
    return "\n\n".join(_blocks(document.element.body))
