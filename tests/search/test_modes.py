"""Keyword (BM25) and hybrid search, fusion, and evaluation on judged data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import QueryError
from indexer.keywords import Analyzer
from search import Index
from search.evaluate import mrr_at, ndcg_at, recall_at
from search.rank import DENSE_WEIGHT, KEYWORD_WEIGHT, RRF_K, reciprocal_rank_fusion
from tests.cli.test_cli import assert_one_line_error, invoke
from tests.conftest import write_files

NOTES = {
    "kafka.md": "# Brokers\n\nThe KafkaConsumerGroup rebalances partitions when a consumer joins.",
    "cafe.txt": "Our café serves espresso, cortado and flat whites from nine.",
    "tea.txt": "Green tea is steamed, black tea is oxidised before drying.",
    "rivers.txt": "Rivers carve canyons by cutting down through rock over millions of years.",
    "owls.txt": "Owls hunt at night; soft feathers make their flight almost silent.",
    "kanji.txt": "東京は日本の首都です。",
}


def test_analyzer_stems_folds_accents_and_splits_cjk() -> None:
    analyzer = Analyzer()
    assert analyzer.terms("The Running runners ran") == ["run", "runner", "ran"]
    assert analyzer.terms("Café") == analyzer.terms("cafe") == ["cafe"]
    assert analyzer.terms("東京都") == ["東京", "京都"]
    assert analyzer.terms("x" * 50 + " of the and") == [], "stop words and hash-like runs are dropped"


def test_keyword_mode_finds_exact_identifiers(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", NOTES)
    build_index(folder, embedder=embedder)
    index = Index.open(folder, embedder=embedder)
    hits = index.search("KafkaConsumerGroup", k=3, mode="keyword")
    assert [h.path for h in hits] == ["kafka.md"], "only rows holding the term score above 0"
    assert hits[0].keyword_rank == 1 and hits[0].cosine is None and hits[0].score == hits[0].keyword_score
    assert index.search("cafe", k=1, mode="keyword")[0].path == "cafe.txt", "accents folded"
    assert index.search("東京", k=1, mode="keyword")[0].path == "kanji.txt"
    assert index.search("zzzunknownword", k=5, mode="keyword") == []
    with pytest.raises(QueryError, match="mode must be one of"):
        index.search("tea", mode="fuzzy")


def test_hybrid_fuses_both_rankings(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", NOTES)
    build_index(folder, embedder=embedder)
    index = Index.open(folder, embedder=embedder)
    query = "silent night hunters with feathers"
    hybrid = index.search(query, k=6)
    assert {h.mode for h in hybrid} == {"hybrid"}
    dense = {(h.path, h.chunk): h for h in index.search(query, k=6, mode="dense")}
    keyword = {(h.path, h.chunk): h for h in index.search(query, k=6, mode="keyword")}
    for hit in hybrid:
        key = (hit.path, hit.chunk)
        expected = DENSE_WEIGHT / (RRF_K + dense[key].dense_rank)
        if key in keyword:
            expected += KEYWORD_WEIGHT / (RRF_K + keyword[key].keyword_rank)
        assert hit.score == pytest.approx(expected)
        assert hit.cosine == pytest.approx(dense[key].score, abs=1e-6), "the true cosine, not the fused score"
        assert hit.keyword_rank == (keyword[key].keyword_rank if key in keyword else None)
    assert hybrid[0].path == "owls.txt"
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_reciprocal_rank_fusion() -> None:
    dense = [(0.9, 0, 1), (0.8, 0, 2), (0.7, 0, 3)]
    keyword = [(12.0, 0, 3), (3.0, 0, 4)]
    fused = reciprocal_rank_fusion(dense, keyword, k=1.0, dense_weight=1.0, keyword_weight=1.0)
    assert [(f.row, f.dense_rank, f.keyword_rank) for f in fused] == [
        (3, 3, 1),
        (1, 1, None),
        (2, 2, None),
        (4, None, 2),
    ]
    assert fused[0].score == pytest.approx(1 / 4 + 1 / 2)


def test_keyword_scores_are_the_same_over_many_parts(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against per-part IDF: a 3-part index scores BM25 exactly as a 1-part one."""
    folder = write_files(tmp_path / "d", NOTES)
    build_index(folder, tmp_path / "one", embedder=embedder)
    build_index(folder, tmp_path / "many", embedder=embedder, config=BuildConfig(part_rows=2))
    one, many = (
        Index.open(tmp_path / "one", embedder=embedder),
        Index.open(tmp_path / "many", embedder=embedder),
    )
    assert len(many.manifest.parts) == 3
    for query in ("tea drying", "rivers and rock", "espresso"):
        a = [(h.path, round(h.score, 5)) for h in one.search(query, k=6, mode="keyword")]
        b = [(h.path, round(h.score, 5)) for h in many.search(query, k=6, mode="keyword")]
        assert a == b


def test_updates_keep_the_keyword_index_in_step(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "d", NOTES)
    config = BuildConfig(part_rows=2)
    build_index(folder, embedder=embedder, config=config)
    (folder / "tea.txt").write_text("Oolong tea sits between green and black in oxidation.")
    (folder / "owls.txt").unlink()
    (folder / "bats.txt").write_text("Bats hunt at night by echolocation.")
    build_index(folder, embedder=embedder, config=config)
    fresh = tmp_path / "fresh"
    build_index(folder, fresh, embedder=embedder, config=config, rebuild=True)
    updated, rebuilt = Index.open(folder, embedder=embedder), Index.open(fresh, embedder=embedder)
    for query in ("hunt at night", "oolong oxidation", "espresso", "rock"):
        a = sorted((h.path, round(h.score, 5)) for h in updated.search(query, k=10, mode="keyword"))
        b = sorted((h.path, round(h.score, 5)) for h in rebuilt.search(query, k=10, mode="keyword"))
        assert a == b
    assert all(h.path != "owls.txt" for h in updated.search("owls feathers", k=10, mode="keyword"))


def test_search_cli_modes_and_explain(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", NOTES)
    build_index(folder, embedder=embedder)
    result = invoke("search", "owls at night", "--index", str(folder), "-k", "2", "--explain")
    assert result.exit_code == 0 and "[hybrid: cosine 0." in result.stdout and "bm25" in result.stdout
    data = json.loads(invoke("search", "owls", "--index", str(folder), "--mode", "keyword", "--json").stdout)
    top = data["results"][0]
    assert (top["mode"], top["path"], top["cosine"], top["keyword_rank"]) == ("keyword", "owls.txt", None, 1)
    assert_one_line_error(invoke("search", "owls", "--index", str(folder), "--mode", "vibes"), 2, "--mode")


def test_metrics() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], relevant) == pytest.approx(1.0)
    assert ndcg_at(["c", "a"], {"a": 1}) == pytest.approx(1 / 1.5849625, rel=1e-6)
    assert mrr_at(["c", "d", "b"], relevant) == pytest.approx(1 / 3)
    assert recall_at(["a", "x"], relevant) == 0.5 and recall_at([], relevant) == 0.0


def test_eval_scores_each_mode_on_a_beir_folder(tmp_path: Path) -> None:
    corpus = [
        {
            "_id": "d1",
            "title": "Sourdough",
            "text": "A sourdough starter is flour and water fermented by wild yeast.",
        },
        {"_id": "d2", "title": "Volcanoes", "text": "Magma rises through the crust and erupts as lava."},
        {
            "_id": "d3",
            "title": "Chess",
            "text": "Control the centre early and develop knights before bishops.",
        },
        {"_id": "d4", "title": "Tides", "text": "The moon's gravity raises two tidal bulges on the oceans."},
    ]
    queries = [
        {"_id": "q1", "text": "how does a bread starter ferment"},
        {"_id": "q2", "text": "lava eruption"},
        {"_id": "q3", "text": "why are there tides"},
        {"_id": "q9", "text": "unjudged query"},
    ]
    folder = write_files(
        tmp_path / "beir",
        {
            "corpus.jsonl": "\n".join(json.dumps(r) for r in corpus),
            "queries.jsonl": "\n".join(json.dumps(q) for q in queries),
            "qrels/test.tsv": "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t1\n",
        },
    )
    result = invoke("eval", str(folder), "-q")
    assert result.exit_code == 0, result.stderr
    assert "3 queries of split 'test'" in result.stdout
    for mode in ("keyword", "dense", "hybrid"):
        assert any(line.startswith(mode) for line in result.stdout.splitlines())
    report = json.loads(invoke("eval", str(folder), "-q", "--json", "--mode", "dense").stdout)
    assert list(report["metrics"]) == ["dense"] and report["metrics"]["dense"]["ndcg@10"] == 1.0
    assert_one_line_error(invoke("eval", str(folder), "--split", "dev", "-q"), 1, "splits here: test")
    assert_one_line_error(invoke("eval", str(tmp_path / "nope"), "-q"), 1, "not a BEIR folder")


def test_mapped_keyword_postings_are_checked_as_they_are_used(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Keyword files are mapped, not read, when an index opens: a file whose rows point past
    its part (consistent with the manifest, wrong inside) is refused when a query reaches it."""
    import numpy as np

    from indexer.errors import IndexCorruptError
    from indexer.keywords import KeywordPart, _mapped_npz
    from indexer.store import file_facts
    from indexer.verify import verify_index

    folder = write_files(tmp_path / "d", NOTES)
    build_index(folder, embedder=embedder)
    target = folder / ".semindex"
    data = json.loads((target / "manifest.json").read_text())
    name = f"keywords/part-{data['parts'][0]['id']}.npz"
    path = target / name
    read, mapped = KeywordPart.load(path), KeywordPart.load(path, mmap=True)
    for array in ("vocab", "starts", "rows", "freqs", "lengths"):  # aligned: used in place
        assert isinstance(getattr(mapped, array), np.memmap), array
    for term in ("tea", "espresso", "東京", "nothing"):
        assert all(
            np.array_equal(a, b) for a, b in zip(read.postings(term), mapped.postings(term), strict=True)
        )
    rows = _mapped_npz(path, ["rows"])
    assert rows is not None
    damaged = np.memmap(
        path, dtype=rows["rows"].dtype, mode="r+", offset=rows["rows"].offset, shape=rows["rows"].shape
    )
    damaged[:] = read.num_rows + 7
    damaged.flush()
    del damaged, rows
    data["parts"][0]["files"]["keywords"] = file_facts(path)
    (target / "manifest.json").write_text(json.dumps(data))
    index = Index.open(folder, embedder=embedder)
    with pytest.raises(IndexCorruptError, match="keyword rows out of range; rebuild"):
        index.search("green tea", k=3, mode="keyword")
    problems = verify_index(target).problems
    assert any("not a readable keyword file" in p for p in problems), problems
    arrays = {k: getattr(read, k) for k in ("vocab", "starts", "rows", "freqs", "lengths")}
    np.savez(path, **{**arrays, "rows": read.rows.astype(np.float64)})  # rows of the wrong type
    data["parts"][0]["files"]["keywords"] = file_facts(path)
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match="not a readable keyword file"):
        Index.open(folder, embedder=embedder)
    np.savez(path, **arrays)  # as np.savez writes it (unaligned): still mapped, and answers the same
    data["parts"][0]["files"]["keywords"] = file_facts(path)
    (target / "manifest.json").write_text(json.dumps(data))
    plain = KeywordPart.load(path, mmap=True)
    assert isinstance(plain.rows, np.memmap)
    assert [h.path for h in Index.open(folder, embedder=embedder).search("green tea", k=3, mode="keyword")]
    np.savez_compressed(path, **arrays)  # a compressed member, damaged: refused in one line too
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 3 : len(raw) // 3 + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    data["parts"][0]["files"]["keywords"] = file_facts(path)
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match="not a readable keyword file"):
        Index.open(folder, embedder=embedder)
    path.write_bytes(b"PK" + b"\0" * 40)
    data["parts"][0]["files"]["keywords"] = file_facts(path)
    (target / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match="not a readable keyword file"):
        Index.open(folder, embedder=embedder)
