"""Regression tests for what an adversarial session found in updates, layout checks and watch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import IndexCorruptError, IndexExistsError, InputError
from indexer.manifest import IndexManifest
from indexer.verify import verify_index
from indexer.watch import watch_folder
from search import Index
from tests.cli.test_cli import assert_one_line_error, invoke
from tests.conftest import ROOT, write_files


def test_damage_is_never_copied_into_a_new_part(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """Guards against an update re-checksumming a damaged part: the damage beyond the sampled
    head and tail is found by the full check, and the part's files are read again."""
    folder = write_files(
        tmp_path / "d", {f"n{i:03}.txt": f"Note {i} about topic {i * 7 % 13}." for i in range(120)}
    )
    build_index(folder, embedder=embedder)
    target = folder / ".semindex"
    part = IndexManifest.load(target).part_refs[0]
    vectors = target / part.vectors_name
    data = bytearray(vectors.read_bytes())
    assert len(data) > 2 * 65536 + 1024, "the middle lies beyond the sampled head and tail"
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # part of one stored vector zeroed
    vectors.write_bytes(bytes(data))
    assert not verify_index(target).ok
    (folder / "n005.txt").write_text("Note 5 was rewritten to talk about lighthouses.")
    report = build_index(folder, embedder=embedder)
    assert report.chunks_embedded == 120, "every file of the damaged part was read again"
    assert verify_index(target).ok
    index = Index.open(target, embedder=embedder)
    for number in (0, 60, 119):
        text = (folder / f"n{number:03}.txt").read_text()
        assert index.search(text, k=1, mode="dense")[0].score > 0.999


def test_deleting_every_document_empties_the_index(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "z", {"plan.txt": "secret plans for the heist"})
    build_index(folder, embedder=embedder)
    (folder / "plan.txt").unlink()
    result = invoke("index", str(folder))
    assert result.exit_code == 0 and "Warning: the folder holds no indexable files now" in result.stderr
    assert Index.open(folder, embedder=embedder).search("heist", k=5) == []
    assert invoke("search", "heist", "--index", str(folder)).exit_code == 1


def test_links_into_the_index_are_not_followed(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "w", {"f.txt": "Trees grow rings each year."})
    build_index(folder, embedder=embedder)
    os.symlink(".semindex/chunks", folder / "ch")
    os.symlink(".semindex/manifest.json", folder / "m.json")
    report = build_index(folder, embedder=embedder)
    assert not report.written and report.chunks == 1, "the index does not index itself"
    assert {s.reason for s in report.skipped} == {"link leads into a semindex index"}


def test_damaged_or_newer_manifests_are_never_written_over_silently(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Owls hunt at night."})
    build_index(folder, embedder=embedder)
    manifest = folder / ".semindex" / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "format_version": 3}))
    with pytest.raises(IndexCorruptError, match=r"newer than this semindex.*--rebuild"):
        build_index(folder, embedder=embedder)
    manifest.write_text("garbage{")
    assert_one_line_error(invoke("index", str(folder), "-q"), 1, "--rebuild")
    assert invoke("index", str(folder), "-q", "--rebuild").exit_code == 0, "the fix the error names works"
    assert Index.open(folder, embedder=embedder).search("owls", k=1)[0].path == "a.txt"


def test_user_files_with_index_like_names_are_never_deleted(tmp_path: Path) -> None:
    out = write_files(
        tmp_path / "out",
        {"index.faiss": "MINE", "chunks.parquet": "mine", "chunks/part-0123456789abcdef.parquet": "n"},
    )
    docs = write_files(tmp_path / "docs", {"a.txt": "Alpha."})
    assert_one_line_error(invoke("index", str(docs), "--index", str(out), "-q"), 1, "not a semindex index")
    assert (out / "index.faiss").read_text() == "MINE" and (
        out / "chunks" / "part-0123456789abcdef.parquet"
    ).exists()


def test_another_folders_index_is_not_replaced(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    d = write_files(tmp_path / "d", {"a.txt": "Alpha about owls."})
    e = write_files(tmp_path / "e", {"b.txt": "Beta about tides."})
    build_index(d, embedder=embedder)
    with pytest.raises(IndexExistsError, match="is the index of"):
        build_index(e, d / ".semindex", embedder=embedder)
    moved = tmp_path / "moved"
    os.rename(d, moved)  # a moved folder keeps its own index, which follows it
    assert build_index(moved, embedder=embedder).files_unchanged == 1


def test_documents_folder_with_its_own_manifest(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    web = write_files(tmp_path / "web", {"manifest.json": '{"name": "app"}', "r.txt": "Rockets need thrust."})
    build_index(web, embedder=embedder)
    result = invoke("search", "rockets", "--index", str(web))
    assert result.exit_code == 0 and "r.txt" in result.stdout
    assert invoke("verify", "--index", str(web)).exit_code == 0


def test_repeated_record_ids_are_data_not_damage(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    lines = '{"_id": "1", "text": "apples"}\n{"_id": "1", "text": "bananas"}\n'
    folder = write_files(tmp_path / "d", {"r.jsonl": lines})
    build_index(folder, embedder=embedder)
    report = verify_index(folder / ".semindex")
    assert report.ok and any("appears more than once" in n for n in report.notes)


def test_manifest_reading_settings_are_checked(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "g", {"a.txt": "Alpha."})
    build_index(folder, embedder=embedder)
    manifest = folder / ".semindex" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["extraction"]["max_file_size"] = "50M"
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError, match=r"extraction\.max_file_size"):
        watch_folder(folder)


def test_watch_stops_at_once_on_settings_that_cannot_work(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    with pytest.raises(InputError, match="documents folder"):
        watch_folder(folder, folder, on_error=lambda exc: None)
    assert_one_line_error(invoke("watch", str(tmp_path / "nope")), 1, "is not a folder")


def test_usage_errors_are_one_line_from_the_real_command() -> None:
    for args in (["search", "-k", "abc", "x"], ["index"], ["--bogus"]):
        done = subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "--help" in lines[0], done.stderr
    plain = subprocess.run([sys.executable, "-m", "cli"], cwd=ROOT, capture_output=True, text=True)
    assert plain.returncode == 0 and "Commands" in plain.stdout


def test_date_filters_follow_a_touched_file(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against filtering on the time a row was written when only the file's time changed."""
    folder = write_files(
        tmp_path / "c", {"silk.md": "The Silk Road linked China and Europe.", "b.txt": "Bees."}
    )
    build_index(folder, embedder=embedder)
    os.utime(folder / "silk.md", (1_483_228_800, 1_483_228_800))  # 2017-01-01
    assert build_index(folder, embedder=embedder).files_unchanged == 2
    old = Index.open(folder, embedder=embedder).search("trade routes", modified_before="2018-01-01")
    assert [h.path for h in old] == ["silk.md"]


def test_other_chunking_is_refused_even_when_nothing_changed(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    assert invoke("index", str(folder), "-q").exit_code == 0
    assert_one_line_error(invoke("index", str(folder), "--chunk-tokens", "100", "-q"), 1, "add --rebuild")
    assert invoke("index", str(folder), "--chunk-tokens", "100", "--rebuild", "-q").exit_code == 0


def _semindex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True)


def test_second_round_query_model_ann_and_options(
    tmp_path: Path, embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regressions from the adversarial pass over the ONNX query model, ANN files and options."""
    import warnings

    import indexer.ann as ann
    from indexer.config import BuildConfig

    folder = write_files(
        tmp_path / "d", {"a.txt": "Vaccines train the immune system.", "b.txt": "Owls hunt."}
    )
    build_index(folder, embedder=embedder, config=BuildConfig(query_model=False))
    # A CLI query that loads the torch model (no ONNX export) works: pandas is let back in.
    done = _semindex("search", "immune training", "-k", "1", "--index", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"][0]["path"] == "a.txt"
    for args in (("--threads", "999999"), ("--device", "meta")):
        bad = _semindex("search", "x", "--index", str(folder), *args)
        assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and "Traceback" not in bad.stderr
    # A damaged export (bytes changed in the middle) is noticed at load and made again by index.
    build_index(folder, embedder=embedder, config=BuildConfig(query_model=True))
    target = folder / ".semindex"
    facts = IndexManifest.load(target).query_model
    assert facts is not None
    model_file = target / facts["model"]
    data = bytearray(model_file.read_bytes())
    middle = len(data) * 3 // 4  # in the encoder layers (the first half is the token embeddings)
    data[middle : middle + (1 << 20)] = bytes(1 << 20)
    model_file.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="cannot be used"):
        assert Index.open(target).search("immune", k=1)[0].path == "a.txt"
    report = build_index(folder, embedder=embedder)
    assert report.written and report.chunks_embedded == 0 and verify_index(target).ok
    # A manifest naming a file outside the index is refused, reported, and never read.
    manifest_path = target / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["query_model"]["model"] = "../../../../etc/passwd"
    manifest_path.write_text(json.dumps(raw))
    report_v = verify_index(target)
    assert not report_v.ok and "query_model.model does not name a file" in report_v.problems[0]
    assert "etc/passwd" not in " ".join(report_v.problems)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Index.open(target, embedder=embedder).search("immune", k=1)[0].path == "a.txt"
    info = _semindex("info", "--index", str(target))
    assert info.returncode == 0 and "query model:  torch" in info.stdout
    build_index(folder, embedder=embedder)  # exports again
    assert verify_index(target).ok
    # A missing ANN file: search goes on exactly, with a warning; index builds it again, embedding nothing.
    monkeypatch.setattr(ann, "MIN_ANN_ROWS", 1)
    build_index(folder, embedder=embedder, config=BuildConfig(index_type="hnsw"))
    (part,) = IndexManifest.load(target).part_refs
    assert part.ann is not None
    (target / part.ann["name"]).unlink()
    with pytest.warns(UserWarning, match="searching that part exactly"):
        assert Index.open(target, embedder=embedder).search("owls", k=1)[0].path == "b.txt"
    assert not verify_index(target).ok
    report = build_index(folder, embedder=embedder)
    assert report.written and report.chunks_embedded == 0 and verify_index(target).ok
