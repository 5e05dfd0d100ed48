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


def looks_binary(head: bytes) -> bool:
    """Tell whether the first bytes of a file look like binary data rather than text."""
    if not head or _bom_encoding(head) in ("utf-16", "utf-32"):
        return False  # UTF-16/32 text is full of NUL bytes
    if b"\x00" in head:
        return True
    controls = sum(head.count(c) for c in _CONTROL)
    return controls / len(head) > 0.05


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode bytes to text with newlines normalised to ``\\n``; return (text, encoding).

    A BOM decides; else UTF-8 if the bytes are valid UTF-8; else cp1252 (a superset of
    Latin-1's printable range); else Latin-1, which decodes anything.
    """
    encoding = _bom_encoding(data)
    candidates = [encoding] if encoding else ["utf-8", "cp1252", "latin-1"]
    for name in candidates:
        try:
            text = data.decode(name)
        except UnicodeDecodeError:
            continue
        return text.replace("\r\n", "\n").replace("\r", "\n"), name
    text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n"), "latin-1"
