"""Reading files: text decoding, binary sniffing, skipping, and walking a folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexer.embedding import SentenceTransformerEmbedder
from indexer.extract import extract_file
from indexer.extract.text import decode_text, looks_binary
from indexer.records import Document, SkippedFile, SourceFile
from indexer.walk import walk_folder
from tests.conftest import write_files


def source(path: Path, root: Path) -> SourceFile:
    stat = path.stat()
    return SourceFile(path.relative_to(root).as_posix(), path, stat.st_size, stat.st_mtime)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("café Zürich".encode(), "café Zürich"),
        ("\ufeffcafé".encode(), "café"),
        ("café".encode("utf-16"), "café"),
        ("café naïve".encode("cp1252"), "café naïve"),
        (b"line one\r\nline two\r", "line one\nline two\n"),
    ],
)
def test_decode_text(data: bytes, expected: str) -> None:
    assert decode_text(data)[0] == expected


def test_binary_sniffing() -> None:
    assert looks_binary(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert not looks_binary("plain text, ünïcode".encode())
    assert not looks_binary("utf-16 text".encode("utf-16"))


def test_extract_skips_with_reasons(tmp_path: Path) -> None:
    """Guards against empty files being embedded as empty text."""
    write_files(
        tmp_path,
        {
            "empty.txt": "",
            "blank.md": "  \n\t\n",
            "image.bin": b"\x00\x01\x02\x03" * 100,
            "photo.png": b"\x89PNG",
            "ok.txt": "Real text here.",
        },
    )
    outcomes = {p.name: extract_file(source(p, tmp_path), 1 << 20) for p in tmp_path.iterdir()}
    assert isinstance(outcomes["ok.txt"], Document)
    reasons = {name: o.reason for name, o in outcomes.items() if isinstance(o, SkippedFile)}
    assert reasons == {
        "empty.txt": "empty or whitespace-only",
        "blank.md": "empty or whitespace-only",
        "image.bin": "binary content",
        "photo.png": "unsupported format (.png)",
    }
    big = extract_file(source(tmp_path / "ok.txt", tmp_path), 4)
    assert isinstance(big, SkippedFile) and "limit" in big.reason


def test_walk_skips_hidden_and_tool_folders(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "a.txt": "a",
            "sub/b.md": "b",
            ".hidden/c.txt": "c",
            ".secret.txt": "d",
            "node_modules/pkg/e.js": "e",
            "venv/pyvenv.cfg": "home = /usr",
            "venv/lib/f.py": "f",
            ".semindex/manifest.json": "{}",
        },
    )
    found = [f.path for f in walk_folder(tmp_path) if isinstance(f, SourceFile)]
    assert found == ["a.txt", "sub/b.md"]


def test_walk_links_stay_inside_and_never_repeat(tmp_path: Path) -> None:
    root = write_files(tmp_path / "root", {"a.txt": "a", "sub/b.txt": "b"})
    outside = write_files(tmp_path / "outside", {"secret.txt": "s"})
    os.symlink(root / "a.txt", root / "link-to-a.txt")
    os.symlink(root / "sub", root / "loop")
    os.symlink(outside, root / "escape")
    os.symlink(root / "missing.txt", root / "dangling.txt")
    os.symlink(root, root / "sub" / "up")
    results = list(walk_folder(root))
    files = sorted(f.path for f in results if isinstance(f, SourceFile))
    assert files == ["a.txt", "sub/b.txt"], "each file once, under its own path, however links are named"
    skipped = {s.path: s.reason for s in results if isinstance(s, SkippedFile)}
    assert skipped == {
        "dangling.txt": "dangling link",
        "escape": "link leads outside the indexed folder",
        "link-to-a.txt": "same file as a.txt",
        "loop": "same folder as sub",
        "sub/up": "same folder as .",
    }


def test_walk_follows_links_to_unseen_places_inside(tmp_path: Path) -> None:
    root = write_files(tmp_path / "root", {".store/real.txt": "r", "env/notes.txt": "not a virtualenv"})
    os.symlink(root / ".store", root / "shelf")
    files = [f.path for f in walk_folder(root) if isinstance(f, SourceFile)]
    assert files == ["env/notes.txt", "shelf/real.txt"]


def test_walk_survives_hostile_names_and_loops(tmp_path: Path) -> None:
    """Guards against one bad name or link loop stopping a whole build."""
    root = write_files(tmp_path / "root", {"good.txt": "g"})
    (root / os.fsdecode(b"bad\xff\xfename.txt")).write_text("text")
    os.symlink(root / "loopb", root / "loopa")
    os.symlink(root / "loopa", root / "loopb")
    results = list(walk_folder(root))
    assert [f.path for f in results if isinstance(f, SourceFile)] == ["good.txt"]
    skipped = {s.path: s.reason for s in results if isinstance(s, SkippedFile)}
    assert skipped["bad\\xff\\xfename.txt"].startswith("file name is not valid UTF-8")
    assert skipped["loopa"] == skipped["loopb"] == "link loop"
    for path in skipped:
        path.encode("utf-8")  # every reported name can be printed and written as JSON


def test_walk_skips_indexes_inside_the_folder(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "root",
        {
            "doc.txt": "d",
            "idx/manifest.json": '{"format": "semindex"}',
            "app/manifest.json": '{"name": "app"}',
        },
    )
    files = [f.path for f in walk_folder(root) if isinstance(f, SourceFile)]
    assert files == ["doc.txt", "app/manifest.json"] or sorted(files) == ["app/manifest.json", "doc.txt"]


def test_nul_bytes_after_the_first_kilobytes_mark_binary(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    path.write_bytes(b"plain text line\n" * 800 + b"\x00" * 1000)
    assert isinstance(extract_file(source(path, tmp_path), 1 << 20), SkippedFile)


def test_control_characters_never_reach_the_text(tmp_path: Path) -> None:
    path = tmp_path / "escapes.txt"
    path.write_bytes(b"A log line with colours. " * 20 + b"red \x1b[31malert\x1b[0m bell\x07 back\x08 end")
    document = extract_file(source(path, tmp_path), 1 << 20)
    assert isinstance(document, Document)
    assert document.text.isprintable() and "alert" in document.text


def _without_root_override() -> list[str] | None:
    """A command prefix under which file permissions apply, or None where none can be had.

    As root, permission bits are not checked unless the capabilities that override them are
    dropped; util-linux ``setpriv`` does that for one process. Other users need nothing.
    """
    if os.geteuid() != 0:
        return []
    import shutil

    if shutil.which("setpriv") is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def test_permission_denied_files_and_folders_are_named_and_skipped(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    prefix = _without_root_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: permission bits cannot be enforced")
    probe = subprocess.run([*prefix, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop the root override here: {probe.stderr.decode().strip()}")
    folder = write_files(
        tmp_path / "d",
        {
            "owls.txt": "Owls hunt at night on silent wings.",
            "secret.txt": "Nobody may read this file.",
            "locked/inside.txt": "Nor this one.",
        },
    )
    (folder / "secret.txt").chmod(0)
    (folder / "locked").chmod(0)
    try:
        run = [*prefix, sys.executable, "-m", "cli", "index", str(folder), "--json", "-q"]
        done = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["files_indexed"] == 1 and report["failed"] == 2
        assert {(s["path"], s["reason"]) for s in report["skipped"]} == {
            ("secret.txt", "cannot read: Permission denied"),
            ("locked", "cannot list folder: Permission denied"),
        }
        strict = subprocess.run([*run, "--strict"], cwd=ROOT, capture_output=True, text=True)
        assert strict.returncode == 1 and "Permission denied" in strict.stderr
        found = subprocess.run(
            [sys.executable, "-m", "cli", "search", "night birds", "--json", "--index", str(folder)],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert [hit["path"] for hit in json.loads(found.stdout)["results"]] == ["owls.txt"]
        (folder / "secret.txt").chmod(0o644)  # readable now: a chmod changes neither size nor time
        again = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
        assert again.returncode == 0 and json.loads(again.stdout)["files_indexed"] == 2, again.stdout
    finally:
        (folder / "locked").chmod(0o755)
        (folder / "secret.txt").chmod(0o644)


def test_a_file_that_vanishes_after_the_walk_is_skipped(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    from indexer.build import build_index
    from indexer.pipeline import BuildProgress

    folder = write_files(tmp_path / "d", {"stays.txt": "Tea grows on hills.", "goes.txt": "Gone soon."})

    def delete_when_reading_starts(progress: BuildProgress) -> None:
        if progress.stage == "loading model":
            (folder / "goes.txt").unlink(missing_ok=True)

    report = build_index(folder, embedder=embedder, progress=delete_when_reading_starts)
    assert report.files_indexed == 1
    assert [(s.path, s.reason, s.failed) for s in report.skipped] == [
        ("goes.txt", "cannot read: No such file or directory", True)
    ]
