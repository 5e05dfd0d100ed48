"""Word documents (.docx): paragraphs and table cells in reading order (python-docx)."""

from __future__ import annotations

import io
import zipfile

from indexer.errors import InputError


def docx_text(data: bytes) -> str:
    """The document's text, one paragraph per block, table rows as tab-separated lines."""
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InputError(f"unreadable .docx ({type(exc).__name__}: {exc})") from exc
    blocks: list[str] = []
    body = document.element.body
    for child in body.iterchildren():
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "p":
            text = "".join(node.text or "" for node in child.iter() if node.tag.endswith("}t"))
            if text.strip():
                blocks.append(text)
        elif tag == "tbl":
            for row in child.iter():
                if row.tag.endswith("}tr"):
                    cells = []
                    for cell in row.iterchildren():
                        if cell.tag.endswith("}tc"):
                            cells.append(
                                " ".join(n.text or "" for n in cell.iter() if n.tag.endswith("}t")).strip()
                            )
                    if any(cells):
                        blocks.append("\t".join(cells))
    return "\n\n".join(blocks)
