"""PDF: the text of each page (pypdf, pure Python), with page numbers kept."""

from __future__ import annotations

import io
import logging

from indexer.errors import InputError


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page, in order; a page without a text layer gives ''.

    Raises InputError when the file cannot be parsed (truncated, encrypted, not a PDF).
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about sloppy files are noise here
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise InputError("encrypted PDF; decrypt it to index it")
        return [page.extract_text() or "" for page in reader.pages]
    except InputError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise InputError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
