"""Searching with the real default model: the API, and the failure cases peers ship."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import IndexNotFoundError, ModelMismatchError, QueryError
from search import Index, SearchResult, find_index
from tests.conftest import SAMPLE_CORPUS

MakeIndex = Callable[[dict[str, str | bytes]], Path]


def test_search_sample_corpus(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    index = Index.open(sample_index, embedder=embedder)
    hits = index.search("effects of sleep on memory", k=5)
    assert len(hits) == 5 and all(isinstance(h, SearchResult) for h in hits)
    assert hits[0].path == "science/sleep-and-memory.md"
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
    source = (SAMPLE_CORPUS / hits[0].path).read_text(encoding="utf-8")
    assert source[hits[0].char_start : hits[0].char_end] == hits[0].text
    lines = source.splitlines()
    assert lines[hits[0].start_line - 1].strip() in hits[0].text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("how do I keep my kitchen knives sharp", "cooking/knife-care.md"),
        ("bread starter and dough fermentation", "cooking/sourdough-bread.md"),
        ("how do birds find their way across continents", "nature/bird-migration.md"),
        ("encrypting messages with a public and a private key", "technology/public-key-cryptography.md"),
        ("isolating project dependencies in Python", "technology/python-virtual-environments.txt"),
    ],
)
def test_queries_find_their_document(
    sample_index: Path, embedder: SentenceTransformerEmbedder, query: str, expected: str
) -> None:
    assert Index.open(sample_index, embedder=embedder).search(query, k=1)[0].path == expected


def test_own_text_scores_as_itself(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against score drift: a chunk's own text as the query scores >= 0.999.

    For a chunk with a section, what was embedded is the section's headings and then the text.
    """
    index = Index.open(sample_index, embedder=embedder)
    rows = pq.read_table(sample_index / "chunks", columns=["text", "section"]).to_pylist()
    assert any(r["section"] is None for r in rows[::20]) and any(r["section"] for r in rows[::20])
    for row in rows[::20]:
        query = f"{row['section']}\n\n{row['text']}" if row["section"] else row["text"]
        hit = index.search(query, k=1, mode="dense")[0]
        assert hit.text == row["text"] and hit.score >= 0.999


def test_scores_are_cosines_within_bounds(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    index = Index.open(sample_index, embedder=embedder)
    hits = index.search("volcano", k=len(index), mode="dense", per_doc=None)
    assert len(hits) == len(index)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    query = embedder.embed_queries(["volcano"])[0]
    row = pq.read_table(sample_index / "chunks").to_pylist()
    embedded = next(r for r in row if r["text"] == hits[0].text)
    top = embedder.embed_documents(
        [f"{embedded['section']}\n\n{embedded['text']}" if embedded["section"] else embedded["text"]]
    )[0]
    assert hits[0].score == pytest.approx(float(query @ top), abs=1e-4)


def test_k_beyond_the_corpus_returns_each_chunk_once(
    make_index: MakeIndex, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against -1 ids and repeats when k exceeds the number of chunks: 3 chunks, k=10."""
    target = make_index({"a.txt": "Cats purr.", "b.txt": "Dogs bark.", "c.txt": "Fish swim."})
    hits = Index.open(target, embedder=embedder).search("animals", k=10)
    assert len(hits) == 3 and {h.path for h in hits} == {"a.txt", "b.txt", "c.txt"}


def test_paraphrase_ranks_above_unrelated(
    make_index: MakeIndex, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against raw-BERT similarity: the paraphrase beats the unrelated sentence."""
    target = make_index(
        {"a.txt": "How old are you?", "b.txt": "What is your age?", "c.txt": "The stock market fell today."}
    )
    ranked = [h.path for h in Index.open(target, embedder=embedder).search("how old are you", k=3)]
    assert ranked.index("b.txt") < ranked.index("c.txt")


def test_rare_word_at_the_end_of_a_long_file_is_found(
    make_index: MakeIndex, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against truncation at the model's max length: a 700-word file's last word is indexed."""
    sentences = [
        "The committee reviewed the quarterly budget and discussed staffing for the coming season.",
        "Several members asked for clearer figures on maintenance costs and travel expenses.",
        "The chair proposed a follow-up meeting to settle the remaining questions in detail.",
    ]
    words: list[str] = []
    while len(words) < 700:
        words.extend(sentences[len(words) % 3].split())
    text = " ".join(words[:700]) + " Finally: xylophonist."
    target = make_index({"minutes.txt": text})
    index = Index.open(target, embedder=embedder)
    chunks = pq.read_table(target / "chunks").to_pylist()
    last = max(c["chunk"] for c in chunks if c["path"] == "minutes.txt")
    assert last >= 3
    hit = index.search("xylophonist", k=1)[0]
    assert (hit.path, hit.chunk) == ("minutes.txt", last)
    assert "xylophonist" in hit.text


def test_pooling_honours_the_attention_mask(embedder: SentenceTransformerEmbedder) -> None:
    """Guards against padding leaking into pooling: 'Hi' alone and beside a long text agree."""
    paragraph = " ".join(["The river flooded the valley after weeks of heavy rain."] * 20)
    assert len(embedder.tokenizer.token_offsets(paragraph)) >= 200
    alone = embedder.embed_documents(["Hi"])[0]
    batched = embedder.embed_documents(["Hi", paragraph])[0]
    assert float(alone @ batched) >= 0.9999
    assert np.linalg.norm(alone) == pytest.approx(1.0, abs=1e-5)


def test_search_many_keeps_order(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    index = Index.open(sample_index, embedder=embedder)
    queries = ["chess openings", "compound interest", "coral reefs"]
    many = index.search_many(queries, k=3)
    assert [r[0].path for r in many] == [index.search(q, k=1)[0].path for q in queries]


def test_bad_queries_are_refused(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    index = Index.open(sample_index, embedder=embedder)
    for query in ("", "   \n"):
        with pytest.raises(QueryError, match="empty"):
            index.search(query)
    for k in (0, -3):
        with pytest.raises(QueryError, match="at least 1"):
            index.search("sleep", k=k)
    with pytest.raises(QueryError, match="query 2 is empty"):
        index.search_many(["sleep", ""])


def test_model_mismatch_is_refused(sample_index: Path, tiny_bert: Path) -> None:
    with pytest.raises(ModelMismatchError, match="built with model sentence-transformers/all-MiniLM-L6-v2"):
        Index.open(sample_index, model=str(tiny_bert))


def test_find_index_walks_up(tmp_path: Path, make_index: MakeIndex) -> None:
    target = make_index({"notes/a.txt": "Some notes."})
    deep = target.parent / "notes"
    assert find_index(deep) == target
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(IndexNotFoundError, match=r"no \.semindex index"):
        find_index(tmp_path / "elsewhere")


def test_info(sample_index: Path) -> None:
    info = Index.open(sample_index).info()
    assert info.model == "sentence-transformers/all-MiniLM-L6-v2" and info.dimension == 384
    assert info.documents == 30 and info.chunks > 30 and info.size_bytes > 0
