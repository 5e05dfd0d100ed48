"""Chunking by the model's own tokenizer: limits, coverage, boundaries, positions."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from indexer.chunking import Span, chunk_document, plan_spans
from indexer.config import ChunkingConfig, ResolvedChunking
from indexer.embedding import ModelTokenizer
from indexer.errors import InputError
from indexer.models import default_model_dir
from indexer.records import Document, SourceFile


@pytest.fixture(scope="module")
def tokenizer() -> ModelTokenizer:
    """The default model's tokenizer alone (no torch needed)."""
    folder = default_model_dir()
    assert folder is not None
    return ModelTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")))


def document(text: str, path: str = "doc.txt") -> Document:
    return Document(SourceFile(path, Path(path), len(text.encode()), 0.0), text)


PARAGRAPH = (
    "The hippocampus replays the day's experiences during slow-wave sleep. "
    "These replays appear to move memories into the neocortex for long-term storage. "
    "Researchers measure this with recordings of place cells in rodents."
)


def test_no_chunk_exceeds_the_limit(tokenizer: ModelTokenizer) -> None:
    """Guards against silent truncation: every chunk fits the token budget when tokenized alone."""
    text = "\n\n".join(f"Section {i}. {PARAGRAPH}" for i in range(40))
    settings = ResolvedChunking(max_tokens=64, overlap_tokens=8)
    chunks = chunk_document(document(text), tokenizer, settings)
    assert len(chunks) > 10
    counts = tokenizer.count_tokens([c.text for c in chunks])
    assert max(counts) <= 64
    assert [c.tokens for c in chunks] == counts


def test_chunks_cover_the_whole_text(tokenizer: ModelTokenizer) -> None:
    """Guards against dropped text: every token of the document lies in some chunk."""
    text = " ".join(f"word{i}" for i in range(3000))
    chunks = chunk_document(document(text), tokenizer, ResolvedChunking(100, 10))
    covered = set()
    for chunk in chunks:
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        covered.update(range(chunk.char_start, chunk.char_end))
    for start, end in tokenizer.token_offsets(text):
        assert start in covered and end - 1 in covered
    assert chunks[-1].text.endswith("word2999")


def test_cuts_prefer_paragraphs_then_sentences(tokenizer: ModelTokenizer) -> None:
    paragraphs = [f"Paragraph {i} begins here. {PARAGRAPH}" for i in range(6)]
    text = "\n\n".join(paragraphs)
    per_paragraph = tokenizer.count_tokens([paragraphs[0]])[0]
    chunks = chunk_document(document(text), tokenizer, ResolvedChunking(per_paragraph * 2 + 4, 0))
    for chunk in chunks:
        assert chunk.text.startswith("Paragraph"), chunk.text[:40]
        assert chunk.text.endswith("rodents.")
    long_paragraph = " ".join([PARAGRAPH] * 6)
    for chunk in chunk_document(document(long_paragraph), tokenizer, ResolvedChunking(50, 0)):
        assert chunk.text[0].isupper() and chunk.text.endswith("."), chunk.text


def test_overlap_starts_at_a_sentence(tokenizer: ModelTokenizer) -> None:
    text = " ".join([PARAGRAPH] * 8)
    chunks = chunk_document(document(text), tokenizer, ResolvedChunking(60, 20))
    for first, second in itertools.pairwise(chunks):
        assert second.char_start < first.char_end, "neighbouring chunks share text"
        assert second.text[0].isupper()


def test_text_without_spaces_is_cut_within_the_limit(tokenizer: ModelTokenizer) -> None:
    text = "-".join(f"part{i}" for i in range(600)) + " tail"
    chunks = chunk_document(document(text), tokenizer, ResolvedChunking(32, 4))
    assert max(tokenizer.count_tokens([c.text for c in chunks])) <= 32
    joined = "".join(c.text for c in chunks)
    assert all(f"part{i}" in joined for i in range(600)) and chunks[-1].text.endswith("tail")


def test_line_numbers_and_offsets(tokenizer: ModelTokenizer) -> None:
    text = "# Title\n\nFirst paragraph line one.\nline two.\n\n" + "\n".join(f"Line {i}." for i in range(200))
    chunks = chunk_document(document(text, "notes/a.md"), tokenizer, ResolvedChunking(40, 0))
    assert chunks[0].start_line == 1
    for chunk in chunks:
        assert chunk.path == "notes/a.md"
        assert chunk.start_line == text.count("\n", 0, chunk.char_start) + 1
        assert chunk.end_line == text.count("\n", 0, chunk.char_end - 1) + 1
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].end_line == text.count("\n") + 1


def test_any_script_stays_within_the_limit(tokenizer: ModelTokenizer) -> None:
    text = (
        ("睡眠は記憶の定着に重要な役割を果たす。" * 80) + "\n\n" + ("Сон помогает закреплять память. " * 60)
    )
    chunks = chunk_document(document(text), tokenizer, ResolvedChunking(64, 8))
    assert max(tokenizer.count_tokens([c.text for c in chunks])) <= 64
    assert any("Сон" in c.text for c in chunks) and any("睡眠" in c.text for c in chunks)


def test_whitespace_gives_no_chunks(tokenizer: ModelTokenizer) -> None:
    assert chunk_document(document(" \n\t\n "), tokenizer, ResolvedChunking(64, 8)) == []


def test_plan_spans_is_pure() -> None:
    text = "aa bb. cc dd"
    offsets = [(0, 2), (3, 5), (5, 6), (7, 9), (10, 12)]
    assert plan_spans(text, offsets, 10, 0) == [Span(0, 12, 5)]
    assert plan_spans(text, offsets, 3, 0) == [Span(0, 6, 3), Span(7, 12, 2)]


def test_settings_are_checked() -> None:
    with pytest.raises(InputError, match="exceeds the model's limit"):
        ChunkingConfig(max_tokens=600).resolve(254)
    with pytest.raises(InputError, match="under half"):
        ChunkingConfig(max_tokens=64, overlap_tokens=40).resolve(254)
    assert ChunkingConfig().resolve(254) == ResolvedChunking(254, 32)


def test_markdown_sections_travel_with_chunks(tokenizer: ModelTokenizer) -> None:
    text = (
        "# Field guide\n\nIntro to the guide.\n\n## Birds\n\n### Owls\n\n"
        + "Owls hunt at night using silent flight feathers. " * 30
        + "\n\n```\n# not a heading\n```\n\n## Fish\n\nSalmon swim upstream to spawn.\n"
    )
    chunks = chunk_document(document(text, "guide.md"), tokenizer, ResolvedChunking(64, 8))
    assert chunks[0].section is None and chunks[0].text.startswith("# Field guide")
    owl_chunks = [c for c in chunks if "silent flight" in c.text]
    assert len(owl_chunks) > 2
    assert all(c.section == "Field guide > Birds > Owls" for c in owl_chunks[1:])
    fish = next(c for c in chunks if "Salmon" in c.text)
    assert fish.section in ("Field guide", "Field guide > Birds > Owls")
    for chunk in chunks:
        assert tokenizer.count_tokens([chunk.embed_text])[0] <= 64, "section and text fit together"
        assert chunk.tokens == tokenizer.count_tokens([chunk.embed_text])[0]
    assert "not a heading" not in "".join(c.section or "" for c in chunks)


def test_rst_and_setext_headings() -> None:
    from indexer.headings import Outline, markdown_headings, rst_headings

    rst = "=====\nGuide\n=====\n\nIntro.\n\nInstall\n-------\n\nSteps.\n\nLinux\n~~~~~\n\nUse apt.\n"
    outline = Outline(rst_headings(rst))
    assert outline.path_at(rst.index("Use apt")) == ("Guide", "Install", "Linux")
    assert outline.path_at(rst.index("Steps")) == ("Guide", "Install")
    md = "Title\n=====\n\nText.\n\nPart\n----\n\nMore."
    assert Outline(markdown_headings(md)).path_at(md.index("More")) == ("Title", "Part")


def test_long_text_is_chunked_window_by_window(tokenizer: ModelTokenizer, monkeypatch) -> None:
    """Guards against unbounded memory: a long text is tokenized in windows, with the same cover."""
    import indexer.chunking as chunking

    text = "\n\n".join(f"Paragraph {i}. {PARAGRAPH}" for i in range(300))
    whole = chunk_document(document(text), tokenizer, ResolvedChunking(64, 8))
    calls: list[int] = []
    original = tokenizer.token_offsets

    def spy(piece: str) -> list[tuple[int, int]]:
        calls.append(len(piece))
        return original(piece)

    monkeypatch.setattr(chunking, "WINDOW_CHARS", 5_000)
    monkeypatch.setattr(tokenizer, "token_offsets", spy)
    windowed = chunk_document(document(text), tokenizer, ResolvedChunking(64, 8))
    assert max(calls) <= 5_000 and len(calls) > 10
    assert max(tokenizer.count_tokens([c.text for c in windowed])) <= 64
    covered = "".join(text[c.char_start : c.char_end] for c in windowed)
    assert all(f"Paragraph {i}." in covered for i in range(300))
    assert abs(len(windowed) - len(whole)) <= len(whole) // 10


def test_a_large_file_is_chunked_a_window_at_a_time(tokenizer: ModelTokenizer) -> None:
    """Guards against holding every chunk of a large file: chunks come out window by window,
    numbered on across windows, with the line numbers a full count gives."""
    from indexer.chunking import WINDOW_CHARS, iter_chunks

    lines = [f"Entry {i}: {PARAGRAPH}" if i % 3 else "" for i in range(6000)]
    text = "\n".join(lines)
    assert len(text) > 3 * WINDOW_CHARS
    windows = list(iter_chunks(document(text), tokenizer, ResolvedChunking(128, 16)))
    assert len(windows) >= 3
    chunks = [c for w in windows for c in w]
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks[:: max(1, len(chunks) // 50)] + chunks[-3:]:
        assert chunk.start_line == text.count("\n", 0, chunk.char_start) + 1
        assert chunk.end_line == text.count("\n", 0, chunk.char_end - 1) + 1
        assert text[chunk.char_start : chunk.char_end] == chunk.text
