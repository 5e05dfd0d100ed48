"""Find the files under a root that a build should look at."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from indexer.errors import InputError
from indexer.manifest import LOCK_FILE, is_index_folder
from indexer.records import SkippedFile, SourceFile

# Folders that never hold the user's documents (virtualenvs are recognised by pyvenv.cfg).
SKIP_DIRS = frozenset({"node_modules", "__pycache__"})


def _is_virtualenv(path: Path) -> bool:
    try:
        return (path / "pyvenv.cfg").is_file()
    except OSError:
        return False


def _holds_index(path: Path) -> bool:
    """Whether ``path`` is another semindex index (or one being written); False when the folder
    cannot be looked into, which ``list_folder`` then reports."""
    try:
        return is_index_folder(path) or (path / LOCK_FILE).exists()
    except OSError:
        return False


def _printable_name(rel: str) -> str | None:
    """None if ``rel`` is valid UTF-8; else a readable version of it (bad bytes escaped)."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return None


IGNORE_FILE = ".semindexignore"


def _compile(patterns: list[str], where: str) -> Any:
    """A gitignore-style matcher, or None for no patterns; a bad pattern is an InputError."""
    import pathspec

    if not patterns:
        return None
    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([pattern])
        except (ValueError, re.error) as exc:
            shown = pattern.encode("unicode_escape").decode("ascii")[:80]
            raise InputError(f"invalid pattern {shown!r} in {where}: {exc}") from exc
    return pathspec.GitIgnoreSpec.from_lines(patterns)


class PathFilter:
    """Which paths the user wants: ``--include``/``--exclude`` globs and ``.semindexignore``.

    Patterns use gitignore syntax, matched against paths relative to the root: ``*.md`` matches
    at any depth, ``notes/`` a folder, ``/draft.txt`` only at the top, ``!keep.md`` re-includes.
    """

    def __init__(self, root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        ignore_file = root / IGNORE_FILE
        lines: list[str] = []
        if ignore_file.is_file():
            lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
        self._ignore = _compile([*lines, *exclude], f"{IGNORE_FILE} or --exclude")
        self._include = _compile(list(include), "--include")

    def wants_folder(self, rel: str) -> bool:
        return self._ignore is None or not self._ignore.match_file(rel + "/")

    def wants_file(self, rel: str) -> bool:
        if self._ignore is not None and self._ignore.match_file(rel):
            return False
        return self._include is None or self._include.match_file(rel)


class _Walk:
    """One walk of a root: real entries first, links after, so a file's own path wins."""

    def __init__(self, root: Path, exclude: tuple[Path, ...], path_filter: PathFilter | None) -> None:
        self.root = root.resolve()
        self.filter = path_filter
        self.excluded = {p.resolve() for p in exclude}
        self.seen: dict[tuple[int, int], str] = {}  # (device, inode) -> the path it was found at
        self.folders: list[Path] = [self.root]
        self.links: list[Path] = []
        stat = self.root.stat()
        self.seen[(stat.st_dev, stat.st_ino)] = "."

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def run(self) -> Iterator[SourceFile | SkippedFile]:
        while self.folders or self.links:
            while self.folders:
                yield from self.list_folder(self.folders.pop())
            links, self.links = self.links, []
            for link in links:
                yield from self.visit(link, is_link=True)

    def list_folder(self, folder: Path) -> Iterator[SourceFile | SkippedFile]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield SkippedFile(self.relative(folder), f"cannot list folder: {exc.strerror}", failed=True)
            return
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                self.links.append(path)
            elif entry.is_dir(follow_symlinks=False):
                subfolders.append(path)
            else:
                yield from self.visit(path, is_link=False)
        # Reversed so that popping visits subfolders in name order.
        self.folders.extend(reversed([f for f in subfolders if self.keep_folder(f)]))

    def keep_folder(self, path: Path) -> bool:
        if path.name in SKIP_DIRS or path.resolve() in self.excluded or _is_virtualenv(path):
            return False
        if self.filter is not None and not self.filter.wants_folder(self.relative(path)):
            return False
        if _holds_index(path):
            return False  # another semindex index (or one being written) inside the folder
        try:
            stat = path.stat()
        except OSError:
            return True  # list_folder reports why it cannot be read
        key = (stat.st_dev, stat.st_ino)
        if key in self.seen:
            return False
        self.seen[key] = self.relative(path)
        return True

    def visit(self, path: Path, is_link: bool) -> Iterator[SourceFile | SkippedFile]:
        rel = self.relative(path)
        if self.filter is not None and not path.is_dir() and not self.filter.wants_file(rel):
            return
        shown = _printable_name(rel)
        if shown is not None:
            yield SkippedFile(shown, "file name is not valid UTF-8; rename it to index it", failed=True)
            return
        try:
            if is_link:
                target = path.resolve()
                if not target.exists():
                    yield SkippedFile(rel, "dangling link")
                    return
                if not target.is_relative_to(self.root):
                    yield SkippedFile(rel, "link leads outside the indexed folder")
                    return
                if any(target == e or target.is_relative_to(e) for e in self.excluded) or any(
                    _holds_index(folder)
                    for folder in (target, *target.parents)
                    if folder.is_relative_to(self.root)
                ):
                    yield SkippedFile(rel, "link leads into a semindex index")
                    return
            stat = path.stat()
        except RuntimeError:  # Python 3.11 reports link loops this way
            yield SkippedFile(rel, "link loop")
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                yield SkippedFile(rel, "link loop")
            else:
                yield SkippedFile(rel, f"cannot read: {exc.strerror or exc}", failed=True)
            return
        key = (stat.st_dev, stat.st_ino)
        if key in self.seen:
            yield SkippedFile(rel, f"same {'folder' if path.is_dir() else 'file'} as {self.seen[key]}")
            return
        if path.is_dir():
            if self.keep_folder(path):
                self.folders.append(path)
        elif path.is_file():
            self.seen[key] = rel
            yield SourceFile(rel, path, stat.st_size, stat.st_mtime)
        else:
            yield SkippedFile(rel, "not a regular file")


def walk_folder(
    root: Path, exclude: tuple[Path, ...] = (), path_filter: PathFilter | None = None
) -> Iterator[SourceFile | SkippedFile]:
    """Yield every candidate file under ``root`` in a stable order, or why one was left out.

    Hidden files and folders, virtualenvs and ``node_modules`` are left out silently. Links are
    followed only when their target lies inside ``root``; a file or folder reached twice is
    indexed once, under its own path rather than a link's.
    """
    yield from _Walk(root, exclude, path_filter).run()
