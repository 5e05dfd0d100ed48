"""Index types: HNSW, IVF and IVF-PQ parts, chosen by size or by the user, with a recall check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import indexer.ann as ann
from cli.output import format_info
from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest import IndexManifest
from indexer.verify import verify_index
from search import Index
from search.shards import _shared_group, dense_hits
from tests.conftest import ROOT, write_files


def test_choice_by_size_and_lists() -> None:
    assert ann.choose_type(1_000) == "flat" and ann.choose_type(ann.FLAT_MAX_ROWS) == "flat"
    assert ann.choose_type(ann.FLAT_MAX_ROWS + 1) == "ivf" and ann.choose_type(ann.IVFPQ_MIN_ROWS) == "ivf"
    assert ann.choose_type(ann.IVFPQ_MIN_ROWS + 1) == "ivfpq"
    assert ann.lists_for(65_536) == 1024 and ann.lists_for(10_000) == 256
    for rows in (700, 5_000, 65_536, 1_000_000):
        assert rows >= ann.TRAINING_PER_LIST * ann.lists_for(rows) or ann.lists_for(rows) == 16


def test_hnsw_on_real_text_survives_updates(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ann, "MIN_ANN_ROWS", 16)  # the sample corpus is far below the real floor
    folder = tmp_path / "corpus"
    write_files(folder, {p.relative_to(ROOT / "sample_corpus").as_posix(): p.read_bytes()
                         for p in (ROOT / "sample_corpus").rglob("*") if p.is_file()})  # fmt: skip
    build_index(folder, embedder=embedder, config=BuildConfig(index_type="hnsw", part_rows=64))
    target = folder / ".semindex"
    manifest = IndexManifest.load(target)
    assert manifest.faiss["type"] == "hnsw" and manifest.faiss["choice"] == "user"
    assert manifest.faiss["recall_at_10"] >= ann.TARGET_RECALL
    assert all(p.ann is not None for p in manifest.part_refs if p.rows >= 16)
    assert verify_index(target).ok
    index = Index.open(target, embedder=embedder)
    assert any(p.ann is not None for p in index._parts)
    exact = Index.open(target, embedder=embedder)
    for part in exact._parts:
        part.ann = None  # the same index searched exhaustively
    for query in ("how do bees pollinate flowers", "compost heap temperature", "watering houseplants"):
        fast, slow = index.search(query, k=5, mode="dense"), exact.search(query, k=5, mode="dense")
        assert [(h.path, h.chunk) for h in fast] == [(h.path, h.chunk) for h in slow]
        assert np.allclose([h.score for h in fast], [h.score for h in slow], atol=1e-5)
    changed = next(folder.rglob("*.md"))
    changed.write_text(changed.read_text() + "\n\nA new closing paragraph about river otters.\n")
    build_index(folder, embedder=embedder)  # the user's choice holds
    again = IndexManifest.load(target)
    assert again.faiss["type"] == "hnsw" and again.faiss["choice"] == "user" and verify_index(target).ok
    report = build_index(folder, embedder=embedder, config=BuildConfig(index_type="auto"))
    assert report.written and report.chunks_embedded == 0
    flat = IndexManifest.load(target)
    assert flat.faiss["type"] == "flat" and all(p.ann is None for p in flat.part_refs)
    assert not list((target / "ann").glob("*.faiss")), "replaced ANN files are collected"


@pytest.mark.parametrize("kind", ["ivf", "ivfpq"])
def test_ivf_types_share_one_training_and_reach_the_recall_target(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """12,000 vectors near real embeddings (mixtures of the sample corpus's chunks) in three
    parts: one IVF training (buckets, PQ codes) drawn across them, copied into every part, and
    kept for a part an update adds; recall is checked against an exhaustive search here too."""
    monkeypatch.setattr(ann, "MIN_ANN_ROWS", 2_000)
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "sample_corpus").rglob("*.md"))]
    base = embedder.embed_documents([t[i : i + 400] for t in texts for i in range(0, len(t), 400)])
    rng = np.random.default_rng(3)

    class Mixtures(SentenceTransformerEmbedder):
        def __init__(self) -> None:
            self.__dict__.update(embedder.__dict__)

        def embed_documents(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
            a = base[rng.integers(0, len(base), len(texts))]
            b = base[rng.integers(0, len(base), len(texts))]
            out = a + rng.uniform(0.2, 0.8, (len(texts), 1)) * b
            out += 0.02 * rng.standard_normal(out.shape)
            return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    folder = tmp_path / "records"
    folder.mkdir()
    with open(folder / "items.jsonl", "w", encoding="utf-8") as handle:
        for number in range(12_000):
            handle.write(json.dumps({"_id": str(number), "text": f"item {number}"}) + "\n")
    config = BuildConfig(index_type=kind, records=True, query_model=False, part_rows=4_000)
    build_index(folder, embedder=Mixtures(), config=config)
    target = folder / ".semindex"
    manifest = IndexManifest.load(target)
    assert manifest.faiss["type"] == kind and manifest.faiss["recall_at_10"] >= ann.TARGET_RECALL
    trained = manifest.faiss["trained"]
    assert trained["lists"] == ann.lists_for(12_000) and trained["rows"] == 12_000
    assert len(manifest.part_refs) == 3
    for part in manifest.part_refs:
        assert part.ann is not None and part.ann["type"] == kind and part.ann["trained"] == trained["id"]
    assert_same_buckets(target, manifest)
    shown = format_info(Index.open(target, embedder=embedder).info().to_dict())
    assert f"one IVF training ({trained['lists']} lists, from {trained['sample']:,} vectors)" in shown

    with open(folder / "more.jsonl", "w", encoding="utf-8") as handle:
        for number in range(3_000):
            handle.write(json.dumps({"_id": f"m{number}", "text": f"more {number}"}) + "\n")
    build_index(folder, embedder=Mixtures(), config=config)
    updated = IndexManifest.load(target)
    assert updated.faiss["trained"] == trained and len(updated.part_refs) == 4
    assert {p.ann["name"] for p in manifest.part_refs} < {p.ann["name"] for p in updated.part_refs if p.ann}
    assert all(p.ann is not None and p.ann["trained"] == trained["id"] for p in updated.part_refs)
    assert_same_buckets(target, updated)
    assert updated.faiss["recall_at_10"] >= ann.TARGET_RECALL

    index = Index.open(target, embedder=embedder)
    queries = ann.sample_queries(base, 50, seed=11)
    found = dense_hits(index._parts, queries, 10)
    # The parts' nearest lists are found once for all of them (one training), with the same
    # answers as each part searching on its own (a mask turns the shared step off).
    assert _shared_group(index._parts) is not None
    every = [np.ones(p.vectors.ntotal, dtype=bool) for p in index._parts]
    assert found == dense_hits(index._parts, queries, 10, every)
    # Mapped from their files (a one-off query's way), the ANN indexes answer the same.
    assert dense_hits(Index.open(target, embedder=embedder, mapped=True)._parts, queries, 10) == found
    # A filter (even rows of the first two parts, none of the last) holds in the shared search.
    some = [np.arange(p.vectors.ntotal) % 2 == 0 for p in index._parts[:2]] + [
        np.zeros(p.vectors.ntotal, dtype=bool) for p in index._parts[2:]
    ]
    filtered = dense_hits(index._parts, queries, 10, some)
    assert all(len(f) == 10 and all(h[1] < 2 and h[2] % 2 == 0 for h in f) for f in filtered)
    for opened in index._parts:
        opened.ann = None
    truth = dense_hits(index._parts, queries, 10)
    recall = np.mean(
        [len({h[1:] for h in f} & {h[1:] for h in t}) / 10 for f, t in zip(found, truth, strict=True)]
    )
    assert recall >= 0.9
    for f, t in zip(found, truth, strict=True):  # scores are exact cosines, even from PQ codes
        exact = {h[1:]: h[0] for h in t}
        assert all(abs(exact[h[1:]] - h[0]) < 1e-5 for h in f if h[1:] in exact)
    assert verify_index(target).ok


def assert_same_buckets(target: Path, manifest: IndexManifest) -> None:
    """Every part's IVF has the very same centroids (and PQ codebook)."""
    import faiss

    first = None
    for part in manifest.part_refs:
        assert part.ann is not None
        stored = faiss.read_index(str(target / part.ann["name"]))  # kept alive: index points into it
        index = faiss.extract_index_ivf(stored)
        centroids = index.quantizer.reconstruct_n(0, index.nlist)
        codebook = faiss.vector_to_array(index.pq.centroids) if hasattr(index, "pq") else np.zeros(0)
        if first is None:
            first = (centroids, codebook)
        assert np.array_equal(first[0], centroids) and np.array_equal(first[1], codebook)
