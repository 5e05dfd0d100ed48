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
from indexer.manifest import STAGING_MARKER, IndexManifest
from indexer.records import Chunk
from indexer.store import IndexLock, IndexWriter, clean_leftovers
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


def write_index(target: Path, items: list[tuple[Chunk, list[float]]], name: str = "fixed-vectors") -> Path:
    dimension = len(items[0][1]) if items else 2
    writer = IndexWriter(target, dimension, row_group_size=2)
    for c, vector in items:
        writer.add([c], np.array([vector], dtype=np.float32))
    manifest = IndexManifest(
        model={"name": name, "dimension": dimension},
        chunking={"max_tokens": 254, "overlap_tokens": 32},
        faiss={},
        counts={"documents": len({c.path for c, _ in items}), "chunks": len(items)},
        files={},
    )
    return writer.commit(manifest)


def test_scores_are_cosines_not_dot_products(tmp_path: Path) -> None:
    """Guards against unnormalised vectors: [1,0] and [10,10] queried with [1,0] score 1.0 and 0.707."""
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0]), (chunk("b.txt", "b"), [10, 10])])
    index = Index.open(target, embedder=VectorEmbedder({"q": [1, 0], "a": [1, 0], "b": [10, 10]}))
    hits = index.search("q", k=2)
    assert [h.path for h in hits] == ["a.txt", "b.txt"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-6)
    assert hits[1].score == pytest.approx(2**-0.5, abs=1e-6)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)


def test_parquet_row_i_is_faiss_id_i(tmp_path: Path) -> None:
    vectors = {f"t{i}": [float(i == j) for j in range(5)] for i in range(5)}
    items = [(chunk(f"doc{i}.txt", f"t{i}", ordinal=i), vectors[f"t{i}"]) for i in range(5)]
    target = write_index(tmp_path / "idx", items)
    table = pq.read_table(target / "chunks.parquet")
    assert table.num_rows == 5 and table.column("path").to_pylist() == [f"doc{i}.txt" for i in range(5)]
    assert pq.ParquetFile(target / "chunks.parquet").metadata.num_row_groups == 3
    index = Index.open(target, embedder=VectorEmbedder(vectors))
    for i in range(5):
        (hit,) = index.search(f"t{i}", k=1)
        assert (hit.path, hit.chunk, hit.text) == (f"doc{i}.txt", i, f"t{i}")


def test_manifest_round_trip(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    data = json.loads((target / "manifest.json").read_text())
    assert data["format"] == "semindex" and data["format_version"] == 1
    assert data["faiss"] == {"type": "IndexFlatIP", "metric": "inner_product", "ntotal": 1}
    assert data["files"]["index.faiss"]["bytes"] == (target / "index.faiss").stat().st_size
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
        (lambda d: (d / "index.faiss").write_text("not an index"), "index.faiss has"),
        (lambda d: (d / "index.faiss").unlink(), "index.faiss is missing"),
        (lambda d: (d / "chunks.parquet").write_bytes(b"PAR1"), "chunks.parquet has"),
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
    shutil.copy(second / "index.faiss", first / "index.faiss")
    with pytest.raises(IndexCorruptError, match="does not match its checksum"):
        Index.open(first, embedder=VectorEmbedder({"a": [1, 0]}))


def test_unreadable_faiss_file_is_caught(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "a"), [1, 0])])
    size = (target / "index.faiss").stat().st_size
    (target / "index.faiss").write_bytes(b"x" * size)
    manifest = json.loads((target / "manifest.json").read_text())
    del manifest["files"]["index.faiss"]["sample_sha256"]
    (target / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="not a readable FAISS index"):
        Index.open(target, embedder=VectorEmbedder({"a": [1, 0]}))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"counts": "x"}, "counts is not an object"),
        ({"files": "x"}, "files is not an object"),
        ({"files": {"index.faiss": "x"}}, "files.index.faiss.bytes"),
        ({"files": {"../../etc/passwd": {"bytes": 1}}}, "unknown file"),
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


def test_leftover_cleanup_touches_only_semindex_folders(tmp_path: Path) -> None:
    """Guards against deleting user folders that merely look like leftovers (out.old-backup)."""
    target = write_index(tmp_path / "out", [(chunk("a.txt", "a"), [1, 0])])
    for name in ("out.old-backup-2023", "out.tmp-drafts", "out.tmp-0123456789ab", "out.old-0123456789ab"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep.txt").write_text("mine")
    stale = tmp_path / "out.tmp-abcdefabcdef"
    stale.mkdir()
    (stale / STAGING_MARKER).touch()
    old = tmp_path / "out.old-fedcbafedcba"
    shutil.copytree(target, old)
    clean_leftovers(target)
    assert not stale.exists() and not old.exists()
    for name in ("out.old-backup-2023", "out.tmp-drafts", "out.tmp-0123456789ab", "out.old-0123456789ab"):
        assert (tmp_path / name / "keep.txt").read_text() == "mine"


def test_interrupted_swap_is_repaired(tmp_path: Path) -> None:
    target = write_index(tmp_path / "out", [(chunk("a.txt", "a"), [1, 0])])
    target.rename(tmp_path / "out.old-0123456789ab")
    clean_leftovers(target)
    assert Index.open(target, embedder=VectorEmbedder({"a": [1, 0]})).search("a", k=1)[0].path == "a.txt"


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    target = tmp_path / "idx"
    with IndexLock(target), pytest.raises(IndexLockedError, match="another semindex process"):
        IndexLock(target).__enter__()
    with IndexLock(target):
        pass  # released once the first holder is done


def test_a_folder_with_someone_elses_manifest_is_not_an_index(tmp_path: Path) -> None:
    """Guards against replacing a web app folder because it has a manifest.json."""
    (tmp_path / "webapp").mkdir()
    (tmp_path / "webapp" / "manifest.json").write_text('{"name": "my web app"}')
    (tmp_path / "webapp" / "index.html").write_text("<p>app</p>")
    with pytest.raises(IndexExistsError, match="not a semindex index"):
        IndexWriter(tmp_path / "webapp", 2)
    assert (tmp_path / "webapp" / "index.html").exists()


def test_writer_never_replaces_a_folder_of_user_files(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(IndexExistsError, match="not a semindex index"):
        IndexWriter(tmp_path / "mine", 2)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_rewrite_replaces_the_old_version_whole(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("old.txt", "a"), [1, 0])])
    write_index(target, [(chunk("new.txt", "b"), [0, 1])])
    index = Index.open(target, embedder=VectorEmbedder({"b": [0, 1]}))
    assert [h.path for h in index.search("b", k=5)] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"], "no temporary folders left behind"


def test_parquet_is_readable_by_other_tools(tmp_path: Path) -> None:
    target = write_index(tmp_path / "idx", [(chunk("a.txt", "alpha"), [1, 0])])
    row = pq.read_table(target / "chunks.parquet").to_pylist()[0]
    assert row["text"] == "alpha" and row["page"] == 3 and row["file_mtime"].year == 2023
    import duckdb
    import pandas

    assert pandas.read_parquet(target / "chunks.parquet")["path"].tolist() == ["a.txt"]
    query = f"SELECT path, chunk, text FROM '{target / 'chunks.parquet'}'"
    assert duckdb.sql(query).fetchall() == [("a.txt", 0, "alpha")]
