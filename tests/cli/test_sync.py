"""Keeping an index in step: verify, --wait, watch, and kill -9 at every step of a write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest import IndexManifest
from indexer.store import IndexLock, garbage
from indexer.watch import watch_folder
from search import Index
from tests.cli.test_cli import assert_one_line_error, invoke
from tests.conftest import ROOT, write_files

DOCS = {
    "bees.txt": "Bees dance to tell the hive where the flowers are.",
    "tides.txt": "The moon's pull raises the tides twice a day.",
    "violin.md": "# Violin\n\nA violin has four strings tuned in fifths.",
}


def test_verify_passes_a_sound_index_and_names_each_damage(tmp_path: Path, embedder) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    result = invoke("verify", "--index", str(folder))
    assert result.exit_code == 0 and "is sound: 1 part(s), 3 chunks, 3 files" in result.stdout
    target = folder / ".semindex"
    part = IndexManifest.load(target).part_refs[0]
    vectors = target / part.vectors_name
    data = bytearray(vectors.read_bytes())
    middle = len(data) // 2  # beyond the sampled head and tail: only the full checksum sees it
    data[middle] ^= 0xFF
    vectors.write_bytes(bytes(data))
    result = invoke("verify", "--index", str(folder), "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and "does not match its checksum" in report["problems"][0]
    assert result.stderr.startswith("Error: ") and "--rebuild" in result.stderr


def test_verify_reports_leftovers_and_missing_index(tmp_path: Path, embedder) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    (folder / ".semindex" / "chunks" / "part-0123456789abcdef.parquet").write_bytes(b"half written")
    result = invoke("verify", "--index", str(folder))
    assert result.exit_code == 0 and "Note: 1 file(s) left by an interrupted write" in result.stderr
    assert_one_line_error(invoke("verify", "--index", str(tmp_path / "none")), 1, "no index at")


def test_second_writer_waits_with_wait(tmp_path: Path, embedder) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    (folder / "new.txt").write_text("Owls hunt at night.")
    lock = IndexLock(folder / ".semindex").__enter__()
    threading.Timer(1.5, lock.__exit__, (None, None, None)).start()
    started = time.monotonic()
    result = invoke("index", str(folder), "--wait")
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 1.4
    assert "waiting" in result.stderr and "1 added" in result.stderr


def test_watch_follows_changes(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", DOCS)
    reports = []
    stop = threading.Event()
    thread = threading.Thread(
        target=watch_folder,
        args=(folder,),
        kwargs={"debounce_ms": 200, "on_update": reports.append, "stop": stop},
        daemon=True,
    )
    thread.start()

    def wait_for(check, what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.1)
        raise AssertionError(f"watch did not {what} ({[r.to_dict() for r in reports]})")

    try:
        wait_for(lambda: reports and reports[0].files_indexed == 3, "build the index")
        for i in range(5):  # a burst of saves
            (folder / f"owl{i}.txt").write_text(f"Owl fact {i}: owls hunt at night.")
        wait_for(lambda: sum(r.files_added for r in reports[1:]) == 5, "add the new files")
        assert len(reports) <= 3, "a burst of changes is batched"
        os.remove(folder / "bees.txt")
        wait_for(lambda: any(r.files_removed for r in reports), "remove the deleted file")
        index = Index.open(folder, embedder=embedder)
        assert all(h.path != "bees.txt" for h in index.search("bees dance", k=10))
        assert index.search("owls at night", k=1)[0].path.startswith("owl")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def _semindex(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "point", ["part-written", "before-manifest", "before-switch", "after-switch", "collecting"]
)
def test_kill_9_at_each_step_of_a_write_leaves_a_usable_index(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, point: str
) -> None:
    """Guards against a corrupt index after a crash: SIGKILL at each step of an update's write."""
    folder = write_files(tmp_path / "d", DOCS)
    build_index(folder, embedder=embedder)
    (folder / "tides.txt").write_text("Tides follow the moon; spring tides come at full and new moon.")
    (folder / "owl.txt").write_text("Owls hunt at night with silent feathers.")
    killed = _semindex("index", str(folder), "-q", env={"SEMINDEX_CRASH_AT": point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    target = folder / ".semindex"
    version = IndexManifest.load(target).version
    assert version == (1 if point in ("part-written", "before-manifest", "before-switch") else 2)
    index = Index.open(target, embedder=embedder)  # the last good version, whole
    assert index.search("violin strings", k=1)[0].path == "violin.md"
    owls = index.search("owls hunting at night", k=1)[0]
    assert (owls.path == "owl.txt") == (version == 2), "old or new, never a mix"
    report = build_index(folder, embedder=embedder)  # the next run cleans up and finishes the job
    assert garbage(target, IndexManifest.load(target)) == []
    if version == 2:
        assert not report.written
    assert Index.open(target, embedder=embedder).search("owls hunting at night", k=1)[0].path == "owl.txt"


def test_kill_9_at_random_moments_of_a_build(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """A first build of the sample corpus killed at several moments: a later run always succeeds."""
    target = tmp_path / "idx"
    for delay in (3.0, 7.0, 10.0):
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "index", str(ROOT / "sample_corpus"), "--index", str(target), "-q"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        if (target / "manifest.json").exists():
            Index.open(target, embedder=embedder).search("bread", k=1)
    build_index(ROOT / "sample_corpus", target, embedder=embedder)
    assert garbage(target, IndexManifest.load(target)) == []
    assert Index.open(target, embedder=embedder).search("sourdough starter", k=1)
