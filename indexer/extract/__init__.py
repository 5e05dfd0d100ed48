"""Turn a source file into a Document, or say why it cannot be one.

One module per format; ``extract_file`` picks by extension and sniffed content.
"""

from __future__ import annotations

from indexer.extract.text import decode_text, looks_binary
from indexer.records import Document, SkippedFile, SourceFile

# Formats whose text needs a parser this version does not have; skipped with a reason.
UNSUPPORTED_EXTENSIONS = frozenset(
    {
        ".pdf",
        ".docx",
        ".doc",
        ".odt",
        ".xlsx",
        ".xls",
        ".pptx",
        ".ppt",
        ".epub",
        ".png",
        ".jpg",
        ".jpeg",
        ".gif",
        ".bmp",
        ".webp",
        ".tif",
        ".tiff",
        ".ico",
        ".svgz",
        ".zip",
        ".gz",
        ".tgz",
        ".bz2",
        ".xz",
        ".7z",
        ".rar",
        ".tar",
        ".zst",
        ".exe",
        ".dll",
        ".so",
        ".dylib",
        ".o",
        ".a",
        ".class",
        ".jar",
        ".pyc",
        ".wasm",
        ".mp3",
        ".mp4",
        ".wav",
        ".flac",
        ".ogg",
        ".mov",
        ".avi",
        ".mkv",
        ".webm",
        ".ttf",
        ".otf",
        ".woff",
        ".woff2",
        ".parquet",
        ".faiss",
        ".npy",
        ".pkl",
        ".db",
        ".sqlite",
    }
)

SNIFF_BYTES = 8192


def extract_file(source: SourceFile, max_file_size: int) -> Document | SkippedFile:
    """Read ``source`` and return its text as a Document, or a SkippedFile with the reason."""
    suffix = source.absolute.suffix.lower()
    if suffix in UNSUPPORTED_EXTENSIONS:
        return SkippedFile(source.path, f"unsupported format ({suffix})")
    if source.size > max_file_size:
        return SkippedFile(source.path, f"larger than the {max_file_size // (1024 * 1024)} MiB limit")
    try:
        data = source.absolute.read_bytes()
    except OSError as exc:
        return SkippedFile(source.path, f"cannot read: {exc.strerror or exc}")
    if not data.strip():
        return SkippedFile(source.path, "empty or whitespace-only")
    if looks_binary(data, SNIFF_BYTES):
        return SkippedFile(source.path, "binary content")
    text, encoding = decode_text(data)
    if not text.strip():
        return SkippedFile(source.path, "empty or whitespace-only")
    return Document(source=source, text=text, encoding=encoding)
