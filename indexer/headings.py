"""Headings of Markdown and reStructuredText, so chunks keep the section they belong to.

Pure: text in, outline out. A chunk's context is the path of headings in effect where it starts
("Guide > Install > Linux"); it is embedded with the chunk, so a paragraph under "Linux" matches
a query about Linux even when the paragraph never says the word.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd"})
RST_SUFFIXES = frozenset({".rst"})
SEPARATOR = " > "

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(\S.*)$")
MAX_TITLE_CHARS = 200
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RST_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+:.<>_])\1{2,}[ \t]*$")
# YAML front matter (Jekyll, Hugo, Obsidian): a first line of ``---`` closed by ``---`` or ``...``.
FRONT_MATTER_MAX_LINES = 200


@dataclass(frozen=True)
class Heading:
    """A heading: where its line starts, its level (1 = top) and its title."""

    start: int
    level: int
    title: str


def _lines(text: str) -> list[tuple[int, str]]:
    out, offset = [], 0
    for line in text.split("\n"):
        out.append((offset, line))
        offset += len(line) + 1
    return out


def _atx_title(rest: str) -> str:
    """The title of an ATX heading without its closing hashes (linear time, no regex)."""
    title = rest.rstrip(" \t")
    bare = title.rstrip("#")
    if bare != title and (not bare or bare[-1] in " \t"):
        title = bare.rstrip(" \t")
    return title[:MAX_TITLE_CHARS]


def front_matter_lines(lines: list[tuple[int, str]]) -> int:
    """How many leading lines are YAML front matter (0 when there is none).

    Its text stays in the chunks (tags and titles are worth finding), but its closing ``---``
    must not make the line above it a setext heading.
    """
    if not lines or lines[0][1].rstrip() != "---":
        return 0
    for number in range(1, min(len(lines), FRONT_MATTER_MAX_LINES)):
        if lines[number][1].rstrip() in ("---", "..."):
            return number + 1
    return 0


def markdown_headings(text: str) -> list[Heading]:
    """ATX (``# Title``) and setext (underlined) headings, outside fenced code blocks and
    front matter."""
    headings: list[Heading] = []
    in_fence = False
    lines = _lines(text)
    skip = front_matter_lines(lines)
    for number, (start, line) in enumerate(lines):
        if number < skip:
            continue
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        atx = _ATX.match(line)
        if atx:
            headings.append(Heading(start, len(atx.group(1)), _atx_title(atx.group(2))))
            continue
        if number > skip and _SETEXT.match(line) and lines[number - 1][1].strip():
            previous_start, previous = lines[number - 1]
            if not _ATX.match(previous) and not (headings and headings[-1].start == previous_start):
                level = 1 if line.strip()[0] == "=" else 2
                headings.append(Heading(previous_start, level, previous.strip()[:MAX_TITLE_CHARS]))
    return headings


def rst_headings(text: str) -> list[Heading]:
    """Section titles underlined (and optionally overlined); levels in order of first use."""
    headings: list[Heading] = []
    styles: list[tuple[str, bool]] = []
    lines = _lines(text)
    for number in range(1, len(lines)):
        line = lines[number][1]
        title_start, title = lines[number - 1]
        if not (_RST_ADORNMENT.match(line) and title.strip() and not _RST_ADORNMENT.match(title)):
            continue
        if len(line.rstrip()) < len(title.rstrip()):
            continue
        overlined = number >= 2 and lines[number - 2][1].rstrip() == line.rstrip()
        style = (line.strip()[0], overlined)
        if style not in styles:
            styles.append(style)
        heading_start = lines[number - 2][0] if overlined else title_start
        headings.append(Heading(heading_start, styles.index(style) + 1, title.strip()[:MAX_TITLE_CHARS]))
    return headings


def document_headings(text: str, suffix: str) -> list[Heading]:
    """The headings of a document, by its file suffix (none for other formats)."""
    if suffix in MARKDOWN_SUFFIXES:
        return markdown_headings(text)
    if suffix in RST_SUFFIXES:
        return rst_headings(text)
    return []


class Outline:
    """Answers: which headings are in effect at a character offset?"""

    def __init__(self, headings: list[Heading]) -> None:
        self._headings = headings
        self._starts = [h.start for h in headings]
        self._paths: list[tuple[str, ...]] = []
        stack: list[Heading] = []
        for heading in headings:
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
            self._paths.append(tuple(h.title for h in stack))

    def __bool__(self) -> bool:
        return bool(self._headings)

    def all_paths(self) -> list[tuple[str, ...]]:
        """Every heading path of the document."""
        return list(self._paths)

    def path_at(self, offset: int) -> tuple[str, ...]:
        """The headings in effect at ``offset``; a heading whose line starts there is left out,
        since the chunk's own text then begins with it."""
        index = bisect.bisect_left(self._starts, offset)
        if index < len(self._starts) and self._starts[index] == offset:
            path = self._paths[index]
            return path[:-1]
        return self._paths[index - 1] if index else ()
