"""Plain text: sniff binary content and decode bytes faithfully."""

from __future__ import annotations

import codecs

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Control bytes that never appear in text (tab, newlines, form feed and escape are allowed).
_CONTROL = bytes(set(range(32)) - {9, 10, 12, 13, 27})


def _bom_encoding(data: bytes) -> str | None:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    return None


def looks_binary(data: bytes, sniff: int = 8192) -> bool:
    """Tell whether a file's bytes look like binary data rather than text.

    Any NUL byte anywhere marks binary (a memchr, fast on large files); so does a first
    ``sniff`` bytes with more than 5% control bytes.
    """
    if not data or _bom_encoding(data) in ("utf-16", "utf-32"):
        return False  # UTF-16/32 text is full of NUL bytes
    if b"\x00" in data:
        return True
    head = data[:sniff]
    controls = sum(head.count(c) for c in _CONTROL)
    return controls / len(head) > 0.05


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes to text with newlines normalised to ``\\n``; return (text, encoding).

    A BOM decides; else UTF-8 if the bytes are valid UTF-8; else cp1252 (a superset of
    Latin-1's printable range); else Latin-1, which decodes anything.
    """
    encoding = _bom_encoding(data)
    if encoding:
        # The BOM is authoritative: a stray bad sequence becomes U+FFFD, not mojibake.
        return clean_text(data.decode(encoding, errors="replace")), encoding
    for name in ("utf-8", "cp1252"):
        try:
            return clean_text(data.decode(name)), name
        except UnicodeDecodeError:
            continue
    return clean_text(data.decode("latin-1")), "latin-1"


# Control characters other than tab, newline and form feed become spaces: they carry no
# meaning for search, and escape sequences must never reach a terminal through a snippet.
_CONTROL_TO_SPACE = {c: " " for c in (*range(0, 9), 11, *range(14, 32), 127)}


def clean_text(text: str) -> str:
    """Newlines normalised to ``\\n``, control characters (but tab and form feed) made spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.translate(_CONTROL_TO_SPACE)
