"""Snippets: the sentences of a chunk that best match the query, with the query's terms marked.

A sentence scores by the query terms it holds, each weighted by how rare it is in the index
(its IDF), so "the" never wins over "mitochondria". A hit found by meaning alone, sharing no
term with the query, shows the start of its chunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from indexer.keywords import Analyzer

SNIPPET_CHARS = 240
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n\s*\n|\n(?=\s*(?:[-*+] |\d+[.)] |#))")
_WORD = re.compile(r"\w+")


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
    if analyzer is None:
        query_terms = set()
    spans = sentences(text) or [(0, len(text))]
    prefixes = _prefixes(query_terms)
    scored = []
    for number, (start, end) in enumerate(spans):
        found = _terms_in(text[start:end], query_terms, analyzer, prefixes)
        scored.append((sum(weight(t) for t in found), -number))
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
    return Snippet(piece, start, highlight_spans(piece, query_terms, analyzer))


def _prefixes(query_terms: set[str]) -> tuple[str, ...]:
    """Leading letters every word holding a term starts with (stems keep all but their last)."""
    return tuple({t[: max(1, min(4, len(t) - 1))] for t in query_terms})


def _could_match(word: str, prefixes: tuple[str, ...]) -> bool:
    # Stemming is the slow part: only words that could stem to a query term are stemmed.
    return word.startswith(prefixes) or not word.isascii()


def _terms_in(
    text: str, query_terms: set[str], analyzer: Analyzer | None, prefixes: tuple[str, ...]
) -> set[str]:
    found: set[str] = set()
    if not query_terms or analyzer is None:
        return found
    for word in _WORD.findall(text.lower()):
        if _could_match(word, prefixes):
            found.update(t for t in analyzer.word_terms(word) if t in query_terms)
    return found


def highlight_spans(
    text: str, query_terms: set[str], analyzer: Analyzer | None
) -> tuple[tuple[int, int], ...]:
    """Offsets of the words of ``text`` whose terms are among ``query_terms``."""
    if not query_terms or analyzer is None:
        return ()
    prefixes = _prefixes(query_terms)
    spans = []
    for match in _WORD.finditer(text):
        word = match.group().lower()
        if _could_match(word, prefixes) and any(t in query_terms for t in analyzer.word_terms(word)):
            spans.append((match.start(), match.end()))
    return tuple(spans)
