"""Building with Ray Data: the same index as a local build, updates from either engine, worker
deaths retried, and an interrupted build resumed from its journaled parts.

Runs on a local Ray instance of two CPUs (tests/conftest.py ``local_ray``); skipped without ray.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pyarrow.parquet as pq
import pytest

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.distributed import JOURNAL_FILE, RayOptions
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest import IndexManifest
from indexer.verify import verify_index
from search import Index
from tests.conftest import ROOT, SAMPLE_CORPUS

pytest.importorskip("ray", reason='ray is not installed (pip install "semindex[ray]")')

SMALL_PARTS = BuildConfig(part_rows=40)  # several parts, so several write tasks
QUERIES = ["effects of sleep on memory", "how do bees find flowers", "sourdough starter"]


def _rows(index: Path) -> list[tuple[dict[str, Any], np.ndarray]]:
    """Every chunk row with its vector, in (path, chunk) order, whatever part holds it."""
    manifest = IndexManifest.load(index)
    out = []
    for part in manifest.part_refs:
        table = pq.read_table(index / part.chunks_name).to_pylist()
        flat = faiss.read_index(str(index / part.vectors_name))
        vectors = flat.reconstruct_n(0, flat.ntotal)
        out += list(zip(table, vectors, strict=True))
    return sorted(out, key=lambda rv: (rv[0]["path"], rv[0]["chunk"]))


def assert_same_index(got: Path, expected: Path) -> None:
    """Same chunks (every column), vectors equal to 1e-5, same top hits and scores."""
    a, b = _rows(got), _rows(expected)
    assert [row for row, _ in a] == [row for row, _ in b]
    assert np.abs(np.stack([v for _, v in a]) - np.stack([v for _, v in b])).max() < 1e-5
    mine, theirs = Index.open(got), Index.open(expected)
    for query in QUERIES:
        hits = mine.search(query, k=8, mode="dense", per_doc=None)
        want = theirs.search(query, k=8, mode="dense", per_doc=None)
        assert [(h.path, h.chunk) for h in hits] == [(h.path, h.chunk) for h in want]
        assert [h.score for h in hits] == pytest.approx([h.score for h in want], abs=1e-5)
    assert verify_index(got).problems == []


@pytest.fixture(scope="module")
def local_build(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Path:
    target = tmp_path_factory.mktemp("local") / "index"
    build_index(SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS)
    return target


def test_a_ray_build_equals_the_local_build_even_when_workers_die(
    local_ray: Path, local_build: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    for stage in ("read", "embed", "write"):  # one worker of each stage is killed once
        (local_ray / f"armed-{stage}").touch()
    target = tmp_path / "ray"
    report = build_index(
        SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS, engine="ray", ray=RayOptions()
    )
    assert sorted(p.name for p in local_ray.iterdir()) == ["fired-embed", "fired-read", "fired-write"]
    for fired in local_ray.iterdir():
        fired.unlink()
    assert report.engine == "ray" and report.files_indexed == 30 and report.chunks == 143
    assert report.chunks_embedded == 143 and not report.skipped
    assert len(IndexManifest.load(target).part_refs) >= 3
    assert not (target / JOURNAL_FILE).exists()
    assert_same_index(target, local_build)
    in_order = [
        [
            row
            for part in IndexManifest.load(index).part_refs
            for row in pq.read_table(index / part.chunks_name).to_pylist()
        ]
        for index in (target, local_build)
    ]
    assert in_order[0] == in_order[1]  # rows in the same order (parts may cut them elsewhere)
    # A dead write task's part files are leftovers, never listed: only listed parts remain.
    assert verify_index(target).notes == [] or all("leftover" not in n for n in verify_index(target).notes)


def test_updates_of_a_ray_built_index_from_either_engine(
    local_ray: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = tmp_path / "docs"
    shutil.copytree(SAMPLE_CORPUS, folder)
    index = tmp_path / "index"
    build_index(folder, index, embedder=embedder, config=SMALL_PARTS, engine="ray")
    bees = folder / "nature" / "bee-colonies-and-pollination.md"
    for engine, change in (("local", 1), ("ray", 2)):
        bees.write_text(bees.read_text(encoding="utf-8") + f"\n\nEdit {change}: drones leave the hive.\n")
        (folder / f"new-{change}.md").write_text(f"# Note {change}\n\nA kettle boils water for tea.\n")
        victim = sorted(folder.rglob("*.md"))[change]
        victim.unlink()
        report = build_index(folder, index, embedder=embedder, config=SMALL_PARTS, engine=engine)
        assert report.engine == engine and report.files_added == 1 and report.files_removed == 1
        assert report.files_updated == 1 and report.chunks_reused > 0
        assert report.chunks_embedded < 10  # only the new chunks: the rest keep their vectors
        fresh = tmp_path / f"fresh-{change}"
        build_index(folder, fresh, embedder=embedder, config=SMALL_PARTS)
        assert_same_index(index, fresh)


def _killed_build(folder: Path, target: Path, engine: str, address: str) -> subprocess.CompletedProcess:
    """A build in its own process that dies (SIGKILL) right after journaling its first part."""
    code = (
        "import sys\n"
        "from indexer.build import build_index\n"
        "from indexer.config import BuildConfig\n"
        "from indexer.distributed import RayOptions\n"
        "build_index(sys.argv[1], sys.argv[2], engine=sys.argv[3], config=BuildConfig(part_rows=40),"
        " ray=RayOptions(address=sys.argv[4]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(folder), str(target), engine, address],
        cwd=ROOT,
        env={**os.environ, "SEMINDEX_CRASH_AT": "part-journaled"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_an_interrupted_build_resumes_from_its_journaled_parts(
    local_ray: Path, local_build: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder, engine: str
) -> None:
    import ray

    target = tmp_path / "index"
    killed = _killed_build(SAMPLE_CORPUS, target, engine, ray.get_runtime_context().gcs_address)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (target / JOURNAL_FILE).is_file() and not (target / "manifest.json").exists()
    journaled = len(list((target / "chunks").iterdir()))
    assert journaled >= 1

    report = build_index(
        SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS, engine=engine, resume=True
    )
    assert report.parts_resumed >= 1
    assert report.chunks_reused > 0 and report.chunks_embedded + report.chunks_reused == 143
    assert not (target / JOURNAL_FILE).exists()
    assert_same_index(target, local_build)


def test_without_resume_an_interrupted_build_starts_over(
    local_ray: Path, tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    import ray

    target = tmp_path / "index"
    killed = _killed_build(SAMPLE_CORPUS, target, "local", ray.get_runtime_context().gcs_address)
    assert killed.returncode == -9
    report = build_index(SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS)
    assert report.chunks_reused == 0 and report.parts_resumed == 0
    assert verify_index(target).problems == []
    listed = {p.chunks_name for p in IndexManifest.load(target).part_refs}
    assert {f"chunks/{p.name}" for p in (target / "chunks").iterdir()} == listed  # leftovers gone


def test_resume_with_other_settings_keeps_the_journal(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    from indexer.config import ChunkingConfig
    from indexer.distributed import ResumeSettingsError

    target = tmp_path / "index"
    assert _killed_build(SAMPLE_CORPUS, target, "local", "unused").returncode == -9
    journal = (target / JOURNAL_FILE).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "parts are kept, run with --resume" advice here
        with pytest.raises(ResumeSettingsError, match="without --resume"):
            build_index(SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS,
                        chunking=ChunkingConfig(max_tokens=128), resume=True)  # fmt: skip
    assert (target / JOURNAL_FILE).read_bytes() == journal
    report = build_index(SAMPLE_CORPUS, target, embedder=embedder, config=SMALL_PARTS, resume=True)
    assert report.parts_resumed >= 1 and verify_index(target).problems == []


def test_ray_build_errors_are_one_line(local_ray: Path, tmp_path: Path) -> None:
    from tests.cli.test_cli import assert_one_line_error, invoke

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("Some text about tea.\n")
    (folder / "bad.docx").write_bytes(b"PK\x03\x04 not really a docx")
    strict = invoke("index", str(folder), "--engine", "ray", "--strict", "-q")
    assert_one_line_error(strict, 1, "bad.docx")
    assert not (folder / ".semindex").exists()
    assert_one_line_error(
        invoke("index", str(folder), "--engine", "spark"), 2, "--engine must be local or ray"
    )
    assert_one_line_error(invoke("index", str(folder), "--num-gpus", "1"), 2, "go with --engine ray")
    assert_one_line_error(invoke("index", str(folder), "--engine", "ray", "--num-gpus", "4"), 1, "more GPUs")
    assert_one_line_error(
        invoke("index", str(folder), "--engine", "ray", "--batch-size", "0"), 2, "--batch-size"
    )
