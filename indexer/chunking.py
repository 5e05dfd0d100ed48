"""Split text into chunks that fit the model, by the model's own tokenizer.

Pure: text and a tokenizer in, chunk spans out. Each chunk holds at most ``max_tokens``
tokens (the model's limit less its special tokens), so nothing is truncated when it is
embedded. Cuts prefer a paragraph break, then a line break, then a sentence end, then a
space between words, and never fall inside a word unless one word alone exceeds the limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from indexer.config import ResolvedChunking
from indexer.headings import SEPARATOR, Heading, Outline, document_headings, markdown_headings
from indexer.records import Chunk, Document

# Strength of a cut between two tokens.
PARAGRAPH, LINE, SENTENCE, WORD, INSIDE = 4, 3, 2, 1, 0
_SENTENCE_END = (".", "!", "?", "。", "！", "？", ";", ":")


class Tokenizer(Protocol):
    """What chunking needs from a tokenizer."""

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character (start, end) of each token of ``text``, special tokens excluded."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text, special tokens excluded."""
        ...


@dataclass(frozen=True)
class Span:
    """A chunk's place in its document: characters [start, end) and its token count."""

    start: int
    end: int
    tokens: int


def _cut_strengths(text: str, offsets: Sequence[tuple[int, int]]) -> list[int]:
    """Strength of a cut before token k, for every k (index 0 is unused)."""
    strengths = [PARAGRAPH]
    for k in range(1, len(offsets)):
        prev_end, start = offsets[k - 1][1], offsets[k][0]
        gap = text[prev_end:start]
        if not gap:
            strengths.append(INSIDE)
        elif "\n" in gap:
            strengths.append(PARAGRAPH if gap.count("\n") >= 2 else LINE)
        elif text[offsets[k - 1][0] : prev_end].endswith(_SENTENCE_END):
            strengths.append(SENTENCE)
        elif gap.isspace():
            strengths.append(WORD)
        else:
            strengths.append(INSIDE)
    return strengths


def _best_cut(strengths: Sequence[int], lo: int, hi: int) -> int:
    """The strongest cut in [lo, hi], the latest among equals; ``hi`` if all are weak."""
    best, best_strength = hi, -1
    for k in range(hi, lo - 1, -1):
        if strengths[k] > best_strength:
            best, best_strength = k, strengths[k]
            if best_strength == PARAGRAPH:
                break
    return best


def plan_spans(
    text: str, offsets: Sequence[tuple[int, int]], max_tokens: int, overlap_tokens: int
) -> list[Span]:
    """Group tokens into spans of at most ``max_tokens`` tokens, overlapping by up to
    ``overlap_tokens`` tokens, cutting at the strongest boundary in the second half of a window.
    """
    n = len(offsets)
    if n == 0:
        return []
    strengths = _cut_strengths(text, offsets)
    spans: list[Span] = []
    start = 0
    while True:
        if n - start <= max_tokens:
            end = n
        else:
            hi = start + max_tokens
            end = _best_cut(strengths, start + max(1, max_tokens // 2), hi)
            if strengths[end] == INSIDE:
                # No word boundary in the second half: look in the first half before cutting a word.
                earlier = _best_cut(strengths, start + 1, hi)
                end = earlier if strengths[earlier] > INSIDE else hi
        spans.append(Span(offsets[start][0], offsets[end - 1][1], end - start))
        if end == n:
            return spans
        next_start = end
        if overlap_tokens:
            next_start = _overlap_start(strengths, max(end - overlap_tokens, start + 1), end)
        start = next_start


def _overlap_start(strengths: Sequence[int], lo: int, end: int) -> int:
    """Where the next chunk starts: the earliest sentence start in [lo, end), else the
    earliest word start, else ``end`` (no overlap rather than a cut inside a word)."""
    word_start = end
    for k in range(lo, end):
        if strengths[k] >= SENTENCE:
            return k
        if strengths[k] == WORD and word_start == end:
            word_start = k
    return word_start


class _LineCounter:
    """1-based line numbers of offsets visited in increasing order, counted as it goes (no
    table of every newline of a large file)."""

    def __init__(self, text: str) -> None:
        self._text, self._offset, self._line = text, 0, 1

    def line_of(self, offset: int) -> int:
        if offset < self._offset:  # not expected (starts only grow), but stay correct
            self._offset, self._line = 0, 1
        self._line += self._text.count("\n", self._offset, offset)
        self._offset = offset
        return self._line

    def line_after(self, start: int, offset: int) -> int:
        """The line of ``offset``, counted from ``start`` (whose line was the last asked)."""
        return self._line + self._text.count("\n", start, offset)


def content_hash(text: str) -> str:
    """Stable identity of a chunk's text (hex SHA-256, first 32 characters)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def chunk_document(document: Document, tokenizer: Tokenizer, settings: ResolvedChunking) -> list[Chunk]:
    """Split one document into chunks that each fit the model's input (see ``iter_chunks``)."""
    return [chunk for window in iter_chunks(document, tokenizer, settings) for chunk in window]


def iter_chunks(
    document: Document, tokenizer: Tokenizer, settings: ResolvedChunking
) -> Iterator[list[Chunk]]:
    """Split one document into chunks that each fit the model's input, a window at a time.

    A large file is tokenized and chunked about ``WINDOW_CHARS`` characters at a time, and each
    window's chunks are yielded before the next is read, so the caller can embed and write them
    without holding every chunk of the file. A document with pages is chunked page by page, so
    that every chunk lies on one page. In Markdown and reStructuredText, each chunk records the
    headings in effect where it starts (its ``section``), which is embedded with it; room for it
    is kept in the token budget.
    """
    text = document.text
    suffix = PurePosixPath(document.source.path).suffix.lower()
    outline = Outline(_headings(document, suffix))
    sections = _SectionContext(outline, tokenizer, settings.max_tokens // 4)
    budget = settings.max_tokens - sections.budget
    segments = document.pages or ((None, 0, len(text)),)
    lines = _LineCounter(text)
    source = document.source
    ordinal = 0
    for page, start, end in _windows(text, segments):
        offsets = [(a + start, b + start) for a, b in tokenizer.token_offsets(text[start:end])]
        spans = plan_spans(text, offsets, budget, min(settings.overlap_tokens, budget // 2 - 1))
        chunks = []
        for span in _enforce_limit(text, spans, tokenizer, budget):
            piece = text[span.start : span.end]
            section, section_tokens = sections.at(span.start)
            start_line = document.line or lines.line_of(span.start)
            end_line = document.line or lines.line_after(span.start, span.end - 1)
            chunks.append(
                Chunk(
                    path=source.path,
                    ordinal=ordinal,
                    text=piece,
                    char_start=span.start,
                    char_end=span.end,
                    start_line=start_line,
                    end_line=end_line,
                    content_hash=content_hash(piece),
                    file_size=source.size,
                    file_mtime=source.mtime,
                    tokens=span.tokens + section_tokens,
                    page=page,
                    record=document.record_id,
                    section=section,
                )
            )
            ordinal += 1
        if chunks:
            yield chunks


def _headings(document: Document, suffix: str) -> list[Heading]:
    if document.format == "text":
        return document_headings(document.text, suffix)
    if document.format == "odt":  # its extractor writes headings as "# Title" lines
        return markdown_headings(document.text)
    return []


WINDOW_CHARS = 200_000


def _windows(
    text: str, segments: Sequence[tuple[int | None, int, int]]
) -> Iterator[tuple[int | None, int, int]]:
    """Cut long segments into windows of about ``size`` characters at paragraph (else line,
    else space) breaks, so a large file is tokenized a window at a time and memory stays
    bounded; chunks never cross a window's edge, which lies where a chunk would end anyway."""
    size = WINDOW_CHARS
    for page, start, end in segments:
        while end - start > size:
            limit = start + size
            cut = -1
            for boundary in ("\n\n", "\n", " "):
                cut = text.rfind(boundary, start + size // 2, limit)
                if cut != -1:
                    cut += len(boundary)
                    break
            cut = limit if cut == -1 else cut
            yield page, start, cut
            start = cut
        yield page, start, end


class _SectionContext:
    """The section (heading path) of each chunk, shortened to fit the tokens kept for it."""

    def __init__(self, outline: Outline, tokenizer: Tokenizer, most: int) -> None:
        self._outline = outline
        self._tokenizer = tokenizer
        self._counts: dict[tuple[str, ...], int] = {}
        self.budget = 0
        if outline:
            paths = outline.all_paths()
            counts = tokenizer.count_tokens([SEPARATOR.join(p) for p in paths])
            self._counts = dict(zip(paths, counts, strict=True))
            self.budget = min(max(counts), most)

    def _count(self, path: tuple[str, ...]) -> int:
        if path not in self._counts:
            self._counts[path] = self._tokenizer.count_tokens([SEPARATOR.join(path)])[0]
        return self._counts[path]

    def at(self, offset: int) -> tuple[str | None, int]:
        """(section text, its tokens) for a chunk starting at ``offset``; outer headings are
        dropped until it fits the budget."""
        if not self.budget:
            return None, 0
        path = self._outline.path_at(offset)
        while path and self._count(path) > self.budget:
            path = path[1:]
        return (SEPARATOR.join(path), self._count(path)) if path else (None, 0)


def _enforce_limit(text: str, spans: list[Span], tokenizer: Tokenizer, max_tokens: int) -> list[Span]:
    """Re-tokenize each span alone and split any that grew past the limit.

    Some tokenizers (SentencePiece, byte-level BPE) tokenize a span's edges differently when it
    stands alone; this makes the limit hold for the text the model will actually see.
    """
    counts = tokenizer.count_tokens([text[s.start : s.end] for s in spans])
    if all(c <= max_tokens for c in counts):
        return [Span(s.start, s.end, c) for s, c in zip(spans, counts, strict=True)]
    fixed: list[Span] = []
    for span, count in zip(spans, counts, strict=True):
        if count <= max_tokens:
            fixed.append(Span(span.start, span.end, count))
            continue
        piece = text[span.start : span.end]
        offsets = [(a + span.start, b + span.start) for a, b in tokenizer.token_offsets(piece)]
        margin = max(1, max_tokens - (count - max_tokens) - 2)
        sub = plan_spans(text, offsets, margin, 0)
        fixed.extend(_enforce_limit(text, sub, tokenizer, max_tokens))
    return fixed
