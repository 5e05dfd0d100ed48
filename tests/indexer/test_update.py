"""Updating an index: only new or changed chunks are embedded, and results stay right."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from search import Index
from tests.conftest import write_files

DOCS = {
    "sleep.md": "# Sleep\n\nDeep sleep consolidates memories.\n\n## Naps\n\nShort naps help alertness.",
    "bread.txt": "Sourdough rises thanks to wild yeast.",
    "lava.txt": "Magma rises through the crust and erupts as lava.",
    "chess.txt": "Control the centre early in a chess game.",
}


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
