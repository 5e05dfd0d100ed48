"""HTML: the readable text and the page title, without scripts, styles or navigation."""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Elements whose content is never part of the readable text.
_SKIP = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "nav",
        "header",
        "footer",
        "aside",
        "button",
        "select",
        "iframe",
        "object",
        "canvas",
    }
)
# Elements that end a paragraph of text.
_BLOCK = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "table",
        "tr",
        "blockquote",
        "pre",
        "figure",
        "figcaption",
        "details",
        "summary",
        "hr",
        "address",
    }
)
_VOID = frozenset(
    {
        "br",
        "hr",
        "img",
        "input",
        "meta",
        "link",
        "area",
        "base",
        "col",
        "embed",
        "source",
        "track",
        "wbr",
        "param",
    }
)


_LONE_LT = re.compile(r"<(?=[^<>]*(?:<|\Z))")


class _ReadableText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.blocks: list[str] = []
        self._current: list[str] = []
        self._skip_stack: list[str] = []
        self._skip_open: dict[str, int] = {}  # how many of each tag the stack holds (O(1) lookups)
        self._in_title = False
        self._pre_depth = 0

    def _end_block(self) -> None:
        text = "".join(self._current)
        text = (
            text.strip("\n") if self._pre_depth else re.sub(r"[ \t\r\f\v]*\n[ \t\r\f\v]*", "\n", text).strip()
        )
        if text.strip():
            self.blocks.append(text)
        self._current = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
            return
        if tag in _SKIP:
            if tag not in _VOID:
                self._skip_stack.append(tag)
                self._skip_open[tag] = self._skip_open.get(tag, 0) + 1
            return
        if self._skip_stack:
            return
        if tag in _BLOCK:
            self._end_block()
        if tag == "pre":
            self._pre_depth += 1
        elif tag == "br":
            self._current.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
            return
        if self._skip_stack:
            if self._skip_open.get(tag):
                # Close the matching element and anything left open inside it.
                while self._skip_stack:
                    closed = self._skip_stack.pop()
                    self._skip_open[closed] -= 1
                    if closed == tag:
                        break
            return
        if tag in _BLOCK:
            self._end_block()
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title_parts.append(data)
        elif not self._skip_stack:
            self._current.append(data if self._pre_depth else re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        self._end_block()


def html_to_text(markup: str) -> tuple[str, str]:
    """Return (title, readable text) of an HTML page; paragraphs are separated by blank lines."""
    parser = _ReadableText()
    # A '<' that another '<' follows before any '>' cannot open a tag; escaping it first keeps
    # html.parser from rescanning the rest of the page at each one (quadratic time).
    parser.feed(_LONE_LT.sub("&lt;", markup))
    parser.close()
    title = " ".join("".join(parser.title_parts).split())
    body = "\n\n".join(parser.blocks)
    if title and not body.startswith(title):
        body = f"{title}\n\n{body}" if body else title
    return title, body
