"""Turn a source file into a Document, or say why it cannot be one.

One module per format; ``extract_file`` picks one by extension, else by sniffed content, and
every other file is read as text if its bytes look like text.
"""

from __future__ import annotations

from collections.abc import Iterator

from indexer.errors import InputError
from indexer.extract.records import (
    RECORD_EXTENSIONS,
    RecordFields,
    iter_records,
    looks_like_records,
    read_head,
)
from indexer.extract.text import decode_text, looks_binary
from indexer.records import Document, SkippedFile, SourceFile

# Formats that need a parser this version does not have, or that hold no text.
UNSUPPORTED_EXTENSIONS = frozenset(
    {
        ".doc", ".xlsx", ".xls", ".pptx", ".ppt", ".epub", ".rtf",
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".ico", ".svgz", ".heic",
        ".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".zst",
        ".exe", ".dll", ".so", ".dylib", ".o", ".a", ".class", ".jar", ".pyc", ".wasm",
        ".mp3", ".mp4", ".wav", ".flac", ".ogg", ".mov", ".avi", ".mkv", ".webm",
        ".ttf", ".otf", ".woff", ".woff2", ".parquet", ".faiss", ".npy", ".pkl", ".db", ".sqlite",
    }
)  # fmt: skip
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
SNIFF_BYTES = 8192
ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"  # stored first, uncompressed
SCANNED = "no extractable text — scanned image?"


def _sniff_format(suffix: str, data: bytes) -> str:
    if suffix == ".pdf" or data.startswith(b"%PDF-"):
        return "pdf"
    if suffix == ".docx" or (data.startswith(b"PK\x03\x04") and b"word/document.xml" in data[:65536]):
        return "docx"
    if suffix == ".odt" or (
        data.startswith(b"PK\x03\x04") and data[30:38] == b"mimetype" and ODT_MIMETYPE in data[:100]
    ):
        return "odt"
    head = data[:1024].lstrip().lower()
    if suffix in HTML_EXTENSIONS or head.startswith((b"<!doctype html", b"<html")):
        return "html"
    return "text"


def extract_documents(
    source: SourceFile,
    max_file_size: int,
    records: bool | None = None,
    fields: RecordFields | None = None,
) -> Iterator[Document | SkippedFile]:
    """The documents in ``source``: one for most files, one per record for record files.

    ``records`` True reads .jsonl/.json/.parquet/.csv/.tsv files as records, False never, and
    None (the default) when their content looks like records. Record files are streamed, so
    ``max_file_size`` does not apply to them.
    """
    fields = fields or RecordFields()
    suffix = source.absolute.suffix.lower()
    if records is not False and suffix in RECORD_EXTENSIONS:
        try:
            as_records = records or looks_like_records(suffix, read_head(source), fields)
        except OSError as exc:
            yield SkippedFile(source.path, f"cannot read: {exc.strerror or exc}", failed=True)
            return
        if as_records:
            yield from iter_records(source, fields)
            return
    yield extract_file(source, max_file_size)


def extract_file(source: SourceFile, max_file_size: int) -> Document | SkippedFile:
    """Read ``source`` and return its text as a Document, or a SkippedFile with the reason."""
    suffix = source.absolute.suffix.lower()
    if suffix in UNSUPPORTED_EXTENSIONS:
        return SkippedFile(source.path, f"unsupported format ({suffix})")
    if source.size > max_file_size:
        return SkippedFile(source.path, f"larger than the --max-file-size limit ({max_file_size:,} bytes)")
    try:
        data = source.absolute.read_bytes()
    except OSError as exc:
        return SkippedFile(source.path, f"cannot read: {exc.strerror or exc}", failed=True)
    if not data.strip():
        return SkippedFile(source.path, "empty or whitespace-only")
    kind = _sniff_format(suffix, data)
    try:
        if kind == "pdf":
            return _pdf_document(source, data)
        if kind == "docx":
            from indexer.extract.docx import docx_text

            return _finish(Document(source, docx_text(data, max_file_size), format="docx"))
        if kind == "odt":
            from indexer.extract.odt import odt_text

            return _finish(Document(source, odt_text(data, max_file_size), format="odt"))
    except InputError as exc:
        return SkippedFile(source.path, str(exc), failed=True)
    if looks_binary(data, SNIFF_BYTES):
        return SkippedFile(source.path, "binary content")
    text, encoding = decode_text(data)
    if kind == "html":
        from indexer.extract.html import html_to_text

        title, body = html_to_text(text)
        return _finish(Document(source, body, encoding, format="html", title=title or None))
    return _finish(Document(source, text, encoding))


def _finish(document: Document) -> Document | SkippedFile:
    if not document.text.strip():
        return SkippedFile(document.source.path, "empty or whitespace-only")
    return document


def _pdf_document(source: SourceFile, data: bytes) -> Document | SkippedFile:
    from indexer.extract.pdf import pdf_pages
    from indexer.extract.text import clean_text

    pages: list[tuple[int, int, int]] = []
    notes: list[SkippedFile] = []
    parts: list[str] = []
    offset = 0
    failed = 0
    for number, (raw, error) in enumerate(pdf_pages(data), start=1):
        text = clean_text(raw).strip()
        if error is not None:
            failed += 1
            notes.append(SkippedFile(f"{source.path}#page={number}", error, failed=True))
            continue
        if not text:
            notes.append(SkippedFile(f"{source.path}#page={number}", SCANNED))
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        pages.append((number, offset, offset + len(text)))
        parts.append(text)
        offset += len(text)
    if not pages:
        if failed:
            return SkippedFile(source.path, f"no readable page ({notes[0].reason})", failed=True)
        return SkippedFile(source.path, SCANNED)
    return Document(source, "".join(parts), format="pdf", pages=tuple(pages), notes=tuple(notes))
