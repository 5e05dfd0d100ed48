"""Snippets: the sentences of a chunk that best match the query, with the query's terms marked.

A sentence scores by the query terms it holds, each weighted by how rare it is in the index
(its IDF), so "the" never wins over "mitochondria". A hit found by meaning alone, sharing no
term with the query, shows the start of its chunk.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from indexer.keywords import Analyzer

SNIPPET_CHARS = 240
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*(?:[-*+] |\d+[.)] |#))")


@dataclass(frozen=True)
class Snippet:
    """A piece of a chunk's text: where it starts, and the spans of query terms within it."""

    text: str
    start: int  # offset in the chunk's text
    highlights: tuple[tuple[int, int], ...]  # (start, end) offsets within ``text``


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``text``, whitespace trimmed."""
    spans = []
    position = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((position, match.start()))
        position = match.end()
    spans.append((position, len(text)))
    out = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


def make_snippet(
    text: str,
    query_terms: set[str],
    analyzer: Analyzer | None,
    weight: Callable[[str], float] = lambda term: 1.0,
    limit: int = SNIPPET_CHARS,
) -> Snippet:
    """The best-matching run of sentences of ``text``, at most about ``limit`` characters.

    Without an analyzer (or query terms) it is the chunk's first sentences, unmarked.
    """
    words = matching_words(text, query_terms, analyzer) if analyzer is not None else []
    spans = sentences(text) or [(0, len(text))]
    found: list[set[str]] = [set() for _ in spans]
    starts = [start for start, _ in spans]
    for start, _, terms in words:
        found[max(0, bisect.bisect_right(starts, start) - 1)].update(terms)
    scored = [(sum(weight(t) for t in terms), -number) for number, terms in enumerate(found)]
    best = max(range(len(spans)), key=lambda i: scored[i]) if any(s for s, _ in scored) else 0
    start, end = spans[best]
    following = best + 1
    while following < len(spans) and spans[following][1] - start <= limit:  # add the next sentences
        end = spans[following][1]
        following += 1
    piece = text[start:end]
    if len(piece) > limit:
        cut = piece.rfind(" ", 0, limit)
        piece = piece[: cut if cut > limit // 2 else limit] + " …"
    kept = len(piece) if end - start == len(piece) else len(piece) - 2  # without the " …"
    marks = tuple((a - start, b - start) for a, b, _ in words if a >= start and b - start <= kept)
    return Snippet(piece, start, marks)


def _prefixes(query_terms: set[str]) -> tuple[str, ...]:
    """Leading letters every word holding a term starts with (stems keep all but their last)."""
    return tuple(sorted({t[: max(1, min(4, len(t) - 1))] for t in query_terms}))


@lru_cache(maxsize=256)
def _candidates(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """Words starting with one of ``prefixes`` (lowercase), or a single non-ASCII word character."""
    starts = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.compile(rf"\b(?:{starts})\w*|[^\W\x00-\x7f]")


_WORD_END = re.compile(r"\w*")


def matching_words(
    text: str, query_terms: set[str], analyzer: Analyzer
) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, query terms) of each word of ``text`` that holds a query term.

    Stemming is the slow part, so only words that could stem to a query term are stemmed:
    those starting with a term's leading letters, and words with non-ASCII letters (folding
    may change them). A regex finds them, with no Python loop over every word.
    """
    if not query_terms:
        return []
    lowered = text.lower()
    if len(lowered) != len(text):  # a rare letter whose lowercase is longer: offsets would drift
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    out = []
    covered = 0
    for match in _candidates(_prefixes(query_terms)).finditer(lowered):
        start, end = match.span()
        if start < covered:
            continue  # another non-ASCII letter of a word already looked at
        if end - start == 1 and not match.group().isascii():  # widen to the whole word
            while start > 0 and (lowered[start - 1].isalnum() or lowered[start - 1] == "_"):
                start -= 1
            end = _WORD_END.match(lowered, end).end()  # type: ignore[union-attr]
        covered = end
        terms = tuple(t for t in analyzer.word_terms(lowered[start:end]) if t in query_terms)
        if terms:
            out.append((start, end, terms))
    return out
