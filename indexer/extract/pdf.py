"""PDF: the text of each page (pypdf, pure Python), with page numbers kept."""

from __future__ import annotations

import io
import logging

from indexer.errors import InputError

_PARSE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError)


def _page_text(page: object) -> tuple[str, str | None]:
    """A page's text and, when the page cannot be read, why (its text is then '')."""
    from pypdf.errors import PyPdfError

    try:
        return page.extract_text() or "", None  # type: ignore[attr-defined]
    except (PyPdfError, *_PARSE_ERRORS) as exc:
        return "", f"unreadable page ({type(exc).__name__}: {exc})"


def pdf_pages(data: bytes) -> list[tuple[str, str | None]]:
    """The text of each page, in order, with the reason a page could not be read (else None);
    a page without a text layer gives ''. One broken page does not cost the others.

    Raises InputError when the file itself cannot be parsed (truncated, encrypted, not a PDF).
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about sloppy files are noise here
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise InputError("encrypted PDF; decrypt it to index it")
        return [_page_text(page) for page in reader.pages]
    except InputError:
        raise
    except (PyPdfError, *_PARSE_ERRORS) as exc:
        raise InputError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
