"""Results a person can act on: grouping, duplicates, filters, snippets, thresholds (sample_corpus/)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import QueryError
from indexer.keywords import Analyzer
from search import Index
from search.snippets import make_snippet, sentences
from tests.cli.test_cli import assert_one_line_error, invoke
from tests.conftest import SAMPLE_CORPUS


@pytest.fixture(scope="module")
def copied(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Path:
    """sample_corpus/ plus a copy of one file and a shared footer in two others, indexed."""
    folder = tmp_path_factory.mktemp("copied") / "docs"
    shutil.copytree(SAMPLE_CORPUS, folder, ignore=shutil.ignore_patterns(".semindex"))
    shutil.copy(folder / "cooking" / "sourdough-bread.md", folder / "misc" / "bread-copy.md")
    notice = "This note is part of the household wiki; edit it freely and keep sources cited.\n"
    for name in ("wiki/notice.txt", "wiki/old/notice-copy.txt"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(notice, encoding="utf-8")
    os.utime(folder / "history" / "silk-road.md", (1_500_000_000, 1_500_000_000))
    build_index(folder, embedder=embedder)
    return folder


def test_results_are_grouped_by_document(sample_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    index = Index.open(sample_index, embedder=embedder)
    grouped = index.search("how does sourdough bread rise", k=5)
    assert len(grouped) == 5 and len({h.path for h in grouped}) == 5, "one chunk per document"
    assert grouped[0].path == "cooking/sourdough-bread.md"
    three = index.search("how does sourdough bread rise", k=2, per_doc=3)
    paths = [h.path for h in three]
    assert paths[:3] == ["cooking/sourdough-bread.md"] * 3 and len(set(paths)) == 2, (
        "a document's chunks together"
    )
    raw = index.search("how does sourdough bread rise", k=5, per_doc=None)
    assert sum(h.path == "cooking/sourdough-bread.md" for h in raw) >= 3, "--chunks: raw chunk hits"
    assert [h.rank for h in three] == list(range(1, len(three) + 1))


def test_identical_chunks_appear_once_with_their_other_places(
    copied: Path, embedder: SentenceTransformerEmbedder
) -> None:
    index = Index.open(copied, embedder=embedder)
    hits = index.search("sourdough starter feeding", k=10)
    assert all(h.path != "misc/bread-copy.md" for h in hits), "the copy is folded into the original"
    top = next(h for h in hits if h.path == "cooking/sourdough-bread.md")
    assert [d["path"] for d in top.duplicates] == ["misc/bread-copy.md"]
    footer = index.search("household wiki edit freely keep sources cited", k=10, per_doc=None, mode="keyword")
    texts = [h.text for h in footer]
    assert len(texts) == len(set(texts)), "identical text shows once"
    assert {footer[0].path, footer[0].duplicates[0]["path"]} == {
        "wiki/notice.txt",
        "wiki/old/notice-copy.txt",
    }


def test_filters_apply_before_ranking(copied: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against filtering the top k afterwards: a filtered search still returns k results."""
    index = Index.open(copied, embedder=embedder)
    for mode in ("hybrid", "dense", "keyword"):
        science = index.search("energy from light", k=4, mode=mode, path="science/")
        assert science and all(h.path.startswith("science/") for h in science)
    assert len(index.search("anything at all about the world", k=6, path="science/", mode="dense")) == 6
    rst = index.search("history of the moon landing", ext="rst")
    assert rst and {h.path.rsplit(".", 1)[1] for h in rst} == {"rst"}
    assert index.search("moon landing", ext=[".RST", "txt"], k=40, mode="dense")[0].path.endswith(
        (".rst", ".txt")
    )
    old = index.search("trade routes", modified_before="2018-01-01", mode="dense")
    assert [h.path for h in old] == ["history/silk-road.md"]
    recent = index.search("trade routes between china and europe", modified_after="2018-01-01", k=40)
    assert all(h.path != "history/silk-road.md" for h in recent)
    chess = index.search("openings", where={"path": lambda p: "chess" in p})
    assert {h.path for h in chess} == {"misc/chess-openings.md"}
    assert index.search("openings", path="no-such-folder/") == []
    with pytest.raises(QueryError, match="no column"):
        index.search("x", where={"colour": "red"})
    with pytest.raises(QueryError, match="takes a date"):
        index.search("x", modified_after="last tuesday")


def test_snippets_show_the_best_sentences_with_terms_marked(
    sample_index: Path, embedder: SentenceTransformerEmbedder
) -> None:
    index = Index.open(sample_index, embedder=embedder)
    (hit,) = index.search("how long should the loaf cool before cutting", k=1)
    assert "cool" in hit.snippet.lower() and len(hit.snippet) <= 250
    marked = {hit.snippet[a:b].lower() for a, b in hit.highlights}
    assert {"loaf", "cool"} <= marked and "the" not in marked
    text = (SAMPLE_CORPUS / hit.path).read_text(encoding="utf-8")
    assert hit.snippet.split()[0] in text.splitlines()[hit.line - 1], "line points at the snippet"
    assert sentences("One. Two!  Three?\n\nFour") == [(0, 4), (5, 9), (11, 17), (19, 23)]
    plain = make_snippet("No shared words here. Second sentence.", {"zebra"}, Analyzer())
    assert plain.text.startswith("No shared words") and plain.highlights == ()
    analyzer = Analyzer()
    text = "İstanbul intro. A naïve CAFÉ owner and the Ωmega_2 cafés—naively run. More naïveté."
    terms = set(analyzer.terms("naive cafe Ωmega_2"))
    piece = make_snippet(text, terms, analyzer)
    marked = [piece.text[a:b] for a, b in piece.highlights]
    assert marked == ["naïve", "CAFÉ", "Ωmega_2", "cafés", "naively"], marked
    assert piece.text.startswith("A naïve"), "the sentence with the most query terms leads"


def test_search_cli_grouping_filters_and_exit_codes(copied: Path) -> None:
    result = invoke("search", "sourdough starter feeding", "--index", str(copied), "-k", "3")
    assert result.exit_code == 0 and "also in: misc/bread-copy.md" in result.stdout
    data = json.loads(
        invoke("search", "bread", "--index", str(copied), "--chunks", "-k", "4", "--json").stdout
    )
    assert {"snippet", "highlights", "line", "duplicates"} <= set(data["results"][0])
    per_doc = json.loads(
        invoke("search", "bread", "--index", str(copied), "--per-doc", "2", "-k", "1", "--json").stdout
    )
    assert len(per_doc["results"]) == 2 and len({r["path"] for r in per_doc["results"]}) == 1
    only = invoke("search", "bread", "--index", str(copied), "--path", "cooking/", "--ext", "md", "--json")
    assert {r["path"].split("/")[0] for r in json.loads(only.stdout)["results"]} == {"cooking"}
    none = invoke("search", "sourdough", "--index", str(copied), "--min-score", "0.99")
    assert none.exit_code == 1 and none.stdout.strip() == "no results", "grep-like: nothing found is exit 1"
    assert invoke("search", "sourdough", "--index", str(copied), "--min-score", "0.2").exit_code == 0
    assert_one_line_error(
        invoke("search", "x", "--index", str(copied), "--modified-after", "soon"), 2, "takes a date"
    )
    assert_one_line_error(invoke("search", "x", "--index", str(copied), "--per-doc", "0"), 2, "--per-doc")


def test_each_record_is_a_document_of_its_own(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against grouping a whole record file into one result."""
    lines = "\n".join(
        json.dumps({"_id": f"r{i}", "text": f"Bees visit flower number {i}."}) for i in range(5)
    )
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "data.jsonl").write_text(lines, encoding="utf-8")
    build_index(folder, embedder=embedder)
    hits = Index.open(folder, embedder=embedder).search("bees and flowers", k=5)
    assert sorted(h.record for h in hits) == [f"r{i}" for i in range(5)]
