"""The on-disk format: Parquet/FAISS/manifest round trip, normalised scores, damaged files."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from indexer.errors import IndexCorruptError, IndexExistsError, IndexLockedError, IndexNotFoundError
from indexer.manifest import IndexManifest
from indexer.records import Chunk
from indexer.store import FAISS_TYPE, IndexLock, PartWriter, check_target, collect_garbage, commit
from search import Index


class VectorEmbedder:
    """A stand-in model that maps known texts to fixed vectors (for score arithmetic only)."""

    name = "fixed-vectors"

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table
        self.dimension = len(next(iter(table.values())))

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    embed_queries = embed_documents


def chunk(path: str, text: str, ordinal: int = 0) -> Chunk:
    return Chunk(path, ordinal, text, 0, len(text), 1, 1, f"hash-{text}", len(text), 1_700_000_000.5, page=3)


def write_index(
    target: Path, items: list[tuple[Chunk, list[float]]], name: str = "fixed-vectors", part_rows: int = 100
) -> Path:
    """Write an index of the given chunks and vectors straight through the store (no model)."""
    dimension = len(items[0][1]) if items else 2
    check_target(target)
    writer = PartWriter(target, dimension, part_rows=part_rows, row_group_size=2)
    for c, vector in items:
        writer.add([c], np.array([vector], dtype=np.float32))
    parts = writer.finish()
    manifest = IndexManifest(
        model={"name": name, "dimension": dimension},
        chunking={"max_tokens": 254, "overlap_tokens": 32},
        faiss={"type": FAISS_TYPE, "metric": "inner_product", "ntotal": len(items)},
        counts={"documents": len({c.path for c, _ in items}), "chunks": len(items)},
        parts=[p.to_dict() for p in parts],
    )
    commit(target, manifest)
    return target


def part_file(target: Path, kind: str = "faiss", number: int = 0) -> Path:
    """The path of one part's file, as the manifest lists it."""
    manifest = IndexManifest.load(target)
    ref = manifest.part_refs[number]
    return target / (ref.vectors_name if kind == "faiss" else ref.chunks_name)


def test_scores_are_cosines_not_dot_products(tmp_path: Path) -> None:
    """Guards against unnormalised vectors: [1,0] and [10,10] queried with [1,0] score 1.0 and 0.707."""
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0]), (chunk("b.txt", "b"), [10, 10])])
    index = Index.open(target, embedder=VectorEmbedder({"q": [1, 0], "a": [1, 0], "b": [10, 10]}))
    hits = index.search("q", k=2, mode="dense")
    assert [h.path for h in hits] == ["a.txt", "b.txt"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(2**-0.5, abs=1e-6)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)


def test_parquet_row_i_is_faiss_id_i(tmp_path: Path) -> None:
    vectors = {f"t{i}": [float(i == j) for j in range(5)] for i in range(5)}
    items = [(chunk(f"doc{i}.txt", f"t{i}", ordinal=i), vectors[f"t{i}"]) for i in range(5)]
    target = write_index(tmp_path / "idx", items)
    table = pq.read_table(part_file(target, "parquet"))
    assert table.num_rows == 5 and table.column("path").to_pylist() == [f"doc{i}.txt" for i in range(5)]
    assert pq.ParquetFile(part_file(target, "parquet")).metadata.num_row_groups == 3
    index = Index.open(target, embedder=VectorEmbedder(vectors))
    for i in range(5):
        (hit,) = index.search(f"t{i}", k=1)
        assert (hit.path, hit.chunk, hit.text) == (f"doc{i}.txt", i, f"t{i}")


def test_manifest_round_trip(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    data = json.loads((target / "manifest.json").read_text())
    assert data["format"] == "semindex" and data["format_version"] == 2
    assert data["faiss"] == {"type": "IndexFlatIP", "metric": "inner_product", "ntotal": 1}
    (part,) = data["parts"]
    assert part["files"]["vectors"]["bytes"] == part_file(target).stat().st_size
    assert [p.name for p in (target / "chunks").iterdir()] == [f"part-{part['id']}.parquet"]
    assert [p.name for p in (target / "vectors").iterdir()] == [f"part-{part['id']}.faiss"]
    assert {"semindex", "python", "faiss-cpu", "pyarrow"} <= set(data["versions"])
    assert IndexManifest.load(target).to_dict() == data


def test_empty_index_answers_with_no_results(tmp_path: Path) -> None:
    """Guards against FAISS -1 ids on an empty index: 25 queries, 25 empty answers."""
    target = write_index(tmp_path / "idx", [])
    index = Index.open(target, embedder=VectorEmbedder({f"q{i}": [1, 0] for i in range(25)}))
    assert index.search_many([f"q{i}" for i in range(25)], k=5) == [[] for _ in range(25)]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: part_file(d).write_text("not an index"), ".faiss has"),
        (lambda d: part_file(d).unlink(), ".faiss is missing"),
        (lambda d: part_file(d, "parquet").write_bytes(b"PAR1"), ".parquet has"),
        (lambda d: (d / "manifest.json").write_text("{"), "manifest.json is unreadable"),
        (lambda d: (d / "manifest.json").write_text("[]"), "not a semindex manifest"),
        (lambda d: (d / "manifest.json").unlink(), "not a semindex index"),
    ],
)
def test_damaged_files_give_clear_errors(tmp_path: Path, damage, message: str) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    damage(target)
    with pytest.raises((IndexCorruptError, IndexNotFoundError), match=message):
        Index.open(target, embedder=VectorEmbedder({"a": [1, 0]}))


def test_vector_file_swapped_from_another_index_is_caught(tmp_path: Path) -> None:
    """Guards against wrong scores from a same-size index.faiss copied in from another index."""
    first = write_index(tmp_path / "one", [(chunk("a.txt", "a"), [1, 0])])
    second = write_index(tmp_path / "two", [(chunk("b.txt", "b"), [0, 1])])
    shutil.copy(part_file(second), part_file(first))
    with pytest.raises(IndexCorruptError, match="does not match its checksum"):
        Index.open(first, embedder=VectorEmbedder({"a": [1, 0]}))


def test_unreadable_faiss_file_is_caught(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    size = part_file(target).stat().st_size
    part_file(target).write_bytes(b"x" * size)
    manifest = json.loads((target / "manifest.json").read_text())
    del manifest["parts"][0]["files"]["vectors"]["sample_sha256"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="not a readable FAISS index"):
        Index.open(target, embedder=VectorEmbedder({"a": [1, 0]}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"counts": "x"}, "counts is not an object"),
        ({"parts": "x"}, "parts is not a list"),
        ({"parts": [{"id": "../../etc/passwd", "rows": 1}]}, "parts[0].id is not a part id"),
        ({"parts": [{"id": "0123456789abcdef", "rows": 1, "files": {}}]}, "describe its chunks"),
        ({"counts": {"chunks": 7, "documents": 1}}, "do not add up"),
        ({"file_table": {"name": "../x.parquet", "bytes": 1}}, "file_table.name"),
        ({"model": None}, "model is not an object"),
        ({"model": {"dimension": 2}}, "model.name is missing"),
        ({"model": {"name": "m", "dimension": "abc"}}, "model.dimension"),
        ({"format_version": "1"}, "format_version"),
        ({"counts": {"chunks": "12", "documents": 1}}, "counts.chunks"),
        ({"chunking": None}, "chunking is not an object"),
        ({"versions": "x"}, "versions is not an object"),
    ],
)
def test_manifest_of_the_wrong_shape_is_damaged(tmp_path: Path, change: dict, message: str) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(change)
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match=re.escape(message)):
        Index.open(target)


def test_garbage_collection_touches_only_semindex_files(tmp_path: Path) -> None:
    """Guards against deleting user files that merely sit in the index folder."""
    target = write_index(tmp_path / "out", [(chunk("a.txt", "a"), [1, 0])])
    (target / "notes.txt").write_text("mine")
    (target / "chunks" / "keep.parquet").write_text("mine")
    stale = [target / "vectors" / "part-0123456789abcdef.faiss", target / "files-0123456789abcdef.parquet"]
    for path in stale:
        path.write_bytes(b"left by a crash")
    (target / "manifest.json.tmp-0123456789ab").write_text("{")
    removed = collect_garbage(target, IndexManifest.load(target))
    assert sorted(removed) == sorted(
        [
            "vectors/part-0123456789abcdef.faiss",
            "files-0123456789abcdef.parquet",
            "manifest.json.tmp-0123456789ab",
        ]
    )
    assert (target / "notes.txt").read_text() == "mine" and (target / "chunks" / "keep.parquet").exists()
    assert Index.open(target, embedder=VectorEmbedder({"a": [1, 0]})).search("a", k=1)[0].path == "a.txt"


def test_parts_are_searched_together_exactly(tmp_path: Path) -> None:
    """Guards against a multi-part merge that loses or misorders hits: 3 parts answer as one."""
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(9, 4)).astype(np.float32)
    texts = {f"t{i}": vectors[i].tolist() for i in range(9)}
    items = [(chunk(f"d{i}.txt", f"t{i}"), texts[f"t{i}"]) for i in range(9)]
    split = write_index(tmp_path / "split", items, part_rows=4)
    whole = write_index(tmp_path / "whole", items)
    assert len(IndexManifest.load(split).parts) == 3 and len(IndexManifest.load(whole).parts) == 1
    embedder = VectorEmbedder({**texts, "q": rng.normal(size=4).tolist()})
    a = Index.open(split, embedder=embedder).search("q", k=9)
    b = Index.open(whole, embedder=embedder).search("q", k=9)
    assert [(h.path, round(h.score, 6)) for h in a] == [(h.path, round(h.score, 6)) for h in b]
    assert [h.rank for h in a] == list(range(1, 10))


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with IndexLock(target), pytest.raises(IndexLockedError, match=r"another semindex process.*--wait"):
        IndexLock(target).__enter__()
    with IndexLock(target):
        pass  # released once the first holder is done


def test_a_folder_with_someone_elses_manifest_is_not_an_index(tmp_path: Path) -> None:
    """Guards against replacing a web app folder because it has a manifest.json."""
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "my web app"}')
    (tmp_path / "webapp" / "index.html").write_text("<p>app</p>")
    with pytest.raises(IndexExistsError, match="not a semindex index"):
        check_target(tmp_path / "webapp")
    assert (tmp_path / "webapp" / "index.html").exists()


def test_writer_never_replaces_a_folder_of_user_files(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(IndexExistsError, match="not a semindex index"):
        check_target(tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_rewrite_replaces_the_old_version_whole(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("old.txt", "a"), [1, 0])])
    write_index(target, [(chunk("new.txt", "b"), [0, 1])])
    index = Index.open(target, embedder=VectorEmbedder({"b": [0, 1]}))
    assert [h.path for h in index.search("b", k=5)] == ["new.txt"]
    assert sorted(p.name for p in target.iterdir()) == ["chunks", "keywords", "manifest.json", "vectors"]
    assert len(list((target / "chunks").iterdir())) == 1, "the old version's files are gone"


def test_parquet_is_readable_by_other_tools(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "alpha"), [1, 0])])
    row = pq.read_table(part_file(target, "parquet")).to_pylist()[0]
    assert row["text"] == "alpha" and row["page"] == 3 and row["file_mtime"].year == 2023
    import duckdb
    import pandas

    assert pandas.read_parquet(target / "chunks")["path"].tolist() == ["a.txt"]
    query = f"SELECT path, chunk, text FROM '{target}/chunks/*.parquet'"
    assert duckdb.sql(query).fetchall() == [("a.txt", 0, "alpha")]
