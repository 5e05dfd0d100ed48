"""Updating an index: only new or changed chunks are embedded, and results stay right."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from indexer.build import MAX_SMALL_PARTS, build_index, plan_update
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest import IndexManifest
from search import Index
from tests.conftest import write_files

DOCS = {
    "sleep.md": "# Sleep\n\nDeep sleep consolidates memories.\n\n## Naps\n\nShort naps help alertness.",
    "bread.txt": "Sourdough rises thanks to wild yeast.",
    "lava.txt": "Magma rises through the crust and erupts as lava.",
    "chess.txt": "Control the centre early in a chess game.",
}
TOPICS = [
    "bees pollinate flowers in spring",
    "a violin has four strings",
    "the tide rises twice a day",
    "sourdough needs a starter",
    "volcanoes erupt molten rock",
    "owls hunt at night",
    "rivers carve canyons slowly",
]


def test_update_embeds_only_what_changed(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against re-embedding everything on every change (the peers' most costly habit)."""
    folder = write_files(tmp_path / "d", DOCS)
    first = build_index(folder, embedder=embedder)
    assert first.chunks_embedded == first.chunks and first.chunks_reused == 0

    again = build_index(folder, embedder=embedder)
    assert (again.files_unchanged, again.chunks_embedded, again.chunks_reused) == (4, 0, first.chunks)

    (folder / "bread.txt").write_text("Sourdough rises thanks to wild yeast. Rye flour ferments faster.")
    os.remove(folder / "lava.txt")
    os.rename(folder / "chess.txt", folder / "openings.txt")
    shutil.copy(folder / "sleep.md", folder / "sleep-copy.md")
    (folder / "new.txt").write_text("Bees dance to show where flowers are.")
    update = build_index(folder, embedder=embedder)
    assert (update.files_added, update.files_updated, update.files_removed, update.files_unchanged) == (
        3,
        1,
        2,
        1,
    )
    assert update.chunks_embedded == 2, "only the edited file's chunk and the new file's chunk"
    assert update.chunks_reused == update.chunks - 2

    index = Index.open(folder / ".semindex", embedder=embedder)
    paths = set(pq.read_table(folder / ".semindex" / "chunks").column("path").to_pylist())
    assert paths == {"sleep.md", "sleep-copy.md", "bread.txt", "openings.txt", "new.txt"}
    assert index.search("rye flour fermentation", k=1)[0].text.endswith("Rye flour ferments faster.")
    assert index.search("chess strategy", k=1)[0].path == "openings.txt"
    assert all(h.path != "lava.txt" for h in index.search("volcano lava", k=10))
    for hit in index.search("naps and memory", k=10):
        source = (folder / hit.path).read_text()
        assert source[hit.char_start : hit.char_end] == hit.text, "every result resolves to its own text"


def test_reused_vectors_equal_fresh_ones(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    (folder / "bread.txt").write_text("A different bread text about baguettes.")
    build_index(folder, embedder=embedder)
    updated = Index.open(folder / ".semindex", embedder=embedder)
    fresh_folder = write_files(
        tmp_path / "fresh", {**DOCS, "bread.txt": "A different bread text about baguettes."}
    )
    build_index(fresh_folder, embedder=embedder)
    fresh = Index.open(fresh_folder / ".semindex", embedder=embedder)
    for query in ("memory", "baguette", "chess", "lava"):
        a = [(h.path, round(h.score, 5)) for h in updated.search(query, k=5)]
        b = [(h.path, round(h.score, 5)) for h in fresh.search(query, k=5)]
        assert a == b


def _rows_and_vectors(index_dir: Path) -> dict[tuple[str, int], tuple[str, np.ndarray]]:
    """Every chunk of an index by (path, ordinal): its text and its stored vector, part by part."""
    manifest = IndexManifest.load(index_dir)
    out = {}
    for part in manifest.part_refs:
        rows = pq.read_table(index_dir / part.chunks_name).to_pylist()
        vectors = faiss.read_index(str(index_dir / part.vectors_name))
        assert vectors.ntotal == len(rows) == part.rows
        for number, row in enumerate(rows):
            key = (row["path"], row["chunk"])
            assert key not in out, f"{key} is stored twice"
            out[key] = (row["text"], vectors.reconstruct(number))
    return out


def test_ids_and_rows_never_drift_over_many_updates(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against FAISS ids and Parquet rows drifting apart after add/modify/delete/rename
    rounds on a many-part index: each round equals a fresh build, vector for vector."""
    config = BuildConfig(part_rows=3)
    folder = write_files(
        tmp_path / "d", {f"n{i}.txt": f"Note {i}: {TOPICS[i % len(TOPICS)]}" for i in range(9)}
    )
    build_index(folder, embedder=embedder, config=config)
    rounds = [
        lambda: (folder / "n1.txt").write_text("Note 1 now talks about glaciers carving valleys."),
        lambda: os.remove(folder / "n2.txt"),
        lambda: (
            os.rename(folder / "n3.txt", folder / "moved" / "n3.txt")
            if (folder / "moved").mkdir() is None
            else None
        ),
        lambda: (folder / "extra.md").write_text("# Extra\n\nA new note on tidal pools and starfish."),
        lambda: [os.remove(folder / f"n{i}.txt") for i in (4, 5, 6)],
        lambda: (folder / "n7.txt").write_text((folder / "n7.txt").read_text() + " It also covers kites."),
    ]
    for number, change in enumerate(rounds):
        change()
        build_index(folder, embedder=embedder, config=config)
        fresh = tmp_path / f"fresh{number}"
        build_index(folder, fresh, embedder=embedder, config=config, rebuild=True)
        updated, expected = _rows_and_vectors(folder / ".semindex"), _rows_and_vectors(fresh)
        assert sorted(updated) == sorted(expected), f"round {number}: the same chunks"
        for key, (text, vector) in expected.items():
            assert updated[key][0] == text
            assert float(np.dot(updated[key][1], vector)) > 0.9999, (
                f"round {number}: {key} has its own vector"
            )
        index = Index.open(folder / ".semindex", embedder=embedder)
        live = {p.relative_to(folder).as_posix() for p in folder.rglob("*.*") if ".semindex" not in p.parts}
        for query in ("glacier valleys", "starfish", "kites", "volcano"):
            assert {h.path for h in index.search(query, k=20)} <= live, "nothing from a deleted file"
    assert len(IndexManifest.load(folder / ".semindex").parts) > 1, "the test exercised several parts"


def test_touched_file_is_not_read_again(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against re-reading files whose time changed but not their content (git checkout)."""
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    os.utime(folder / "bread.txt", (1_600_000_000, 1_600_000_000))
    same_size = (folder / "chess.txt").read_text().replace("centre", "center")
    (folder / "chess.txt").write_text(same_size)  # same size, other bytes: must be read again
    report = build_index(folder, embedder=embedder)
    assert (report.files_unchanged, report.files_updated, report.chunks_embedded) == (3, 1, 1)
    plan = plan_update(folder)
    assert "bread.txt" in plan.unchanged and plan.changed == [], "the new time was recorded"


def test_no_change_loads_no_model_and_writes_nothing(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    before = (folder / ".semindex" / "manifest.json").stat().st_mtime_ns

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded for an update with nothing to embed")

    monkeypatch.setattr("indexer.build.load_embedder", no_model)
    report = build_index(folder)
    assert (report.files_unchanged, report.chunks_embedded, report.chunks) == (4, 0, report.chunks_reused)
    assert (folder / ".semindex" / "manifest.json").stat().st_mtime_ns == before
    os.remove(folder / "lava.txt")
    report = build_index(folder)  # removing needs no model either
    assert report.files_removed == 1
    assert all(h.path != "lava.txt" for h in Index.open(folder, embedder=embedder).search("lava", k=5))


def test_unchanged_bad_files_are_reported_without_being_read(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_files(
        tmp_path / "d",
        {**DOCS, "broken.pdf": b"%PDF-1.4 truncated", "blank.txt": "  \n", "blob.txt": b"\x00\x01\x02" * 50},
    )
    first = build_index(folder, embedder=embedder)
    reasons = sorted((s.path, s.reason) for s in first.skipped)
    assert [p for p, _ in reasons] == ["blank.txt", "blob.txt", "broken.pdf"]
    calls = []
    monkeypatch.setattr("indexer.build.extract_documents", lambda *a, **k: calls.append(a) or iter(()))
    again = build_index(folder, embedder=embedder)
    assert calls == [] and sorted((s.path, s.reason) for s in again.skipped) == reasons
    assert sum(s.failed for s in again.skipped) == sum(s.failed for s in first.skipped) == 1


def test_format_1_index_is_read_then_rewritten_as_parts(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against losing an index written by semindex 0.1.0 (one pair of files, format 1)."""
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    target = folder / ".semindex"
    data = json.loads((target / "manifest.json").read_text())
    (part,) = data["parts"]
    os.rename(target / f"chunks/part-{part['id']}.parquet", target / "chunks.parquet")
    os.rename(target / f"vectors/part-{part['id']}.faiss", target / "index.faiss")
    for key in ("parts", "file_table", "extraction", "version", "updated_at"):
        del data[key]
    data.update(
        format_version=1,
        files={"chunks.parquet": part["files"]["chunks"], "index.faiss": part["files"]["vectors"]},
    )
    (target / "manifest.json").write_text(json.dumps(data))
    for name in os.listdir(target):
        if name.startswith("files-"):
            os.remove(target / name)

    assert Index.open(target, embedder=embedder).search("chess strategy", k=1)[0].path == "chess.txt"
    report = build_index(folder, embedder=embedder)
    assert report.chunks_embedded == 0 and report.files_unchanged == 4, "nothing embedded again"
    assert IndexManifest.load(target).format_version == 2
    assert not (target / "index.faiss").exists() and not (target / "chunks.parquet").exists()
    assert Index.open(target, embedder=embedder).search("chess strategy", k=1)[0].path == "chess.txt"


def test_many_small_updates_are_compacted(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    config = BuildConfig(part_rows=40)
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder, config=config)
    for i in range(8):
        (folder / f"day{i}.txt").write_text(f"Diary day {i}: {TOPICS[i % len(TOPICS)]}")
        build_index(folder, embedder=embedder, config=config)
        assert len(IndexManifest.load(folder / ".semindex").parts) <= MAX_SMALL_PARTS + 1
    index = Index.open(folder, embedder=embedder)
    assert len(index) == sum(p["rows"] for p in IndexManifest.load(folder / ".semindex").parts)
    assert {h.path for h in index.search("diary day", k=20)} >= {f"day{i}.txt" for i in range(8)}


def test_changed_reading_settings_read_files_again(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    lines = "\n".join(json.dumps({"_id": f"r{i}", "text": TOPICS[i]}) for i in range(3))
    folder = write_files(tmp_path / "d", {"data.jsonl": lines, "note.txt": "A plain note about owls."})
    build_index(folder, embedder=embedder, config=BuildConfig(records=False))
    report = build_index(folder, embedder=embedder, config=BuildConfig(records=True))
    assert report.files_unchanged == 0 and report.files_updated == 2
    rows = pq.read_table(folder / ".semindex" / "chunks").to_pylist()
    assert sorted(r["record"] for r in rows if r["path"] == "data.jsonl") == ["r0", "r1", "r2"]


def test_open_index_keeps_answering_across_an_update(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against readers breaking when a writer deletes the version they opened."""
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    old = Index.open(folder, embedder=embedder)
    (folder / "bread.txt").write_text("Focaccia is an oily flat bread from Liguria.")
    build_index(folder, embedder=embedder)
    assert old.search("sourdough yeast", k=1)[0].path == "bread.txt", "the old version, whole"
    new = Index.open(folder, embedder=embedder)
    assert new.version == old.version + 1
    assert "Focaccia" in new.search("flat bread", k=1)[0].text
