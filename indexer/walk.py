"""Find the files under a root that a build should look at."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from indexer.records import SkippedFile, SourceFile

# Folders that never hold the user's documents.
SKIP_DIRS = frozenset({"node_modules", "__pycache__", "venv", "env", "site-packages"})


def _is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


def walk_folder(root: Path, exclude: tuple[Path, ...] = ()) -> Iterator[SourceFile | SkippedFile]:
    """Yield every candidate file under ``root`` in a stable order, or why one was left out.

    Hidden files and folders, virtualenvs and ``node_modules`` are left out silently; links
    are followed only when their target lies inside ``root`` and has not been seen already.
    """
    root = root.resolve()
    excluded = {p.resolve() for p in exclude}
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            yield SkippedFile(_relative(root, Path(folder)), f"cannot list folder: {exc.strerror}")
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            rel = _relative(root, path)
            try:
                if entry.is_symlink():
                    target = path.resolve()
                    if not target.exists():
                        yield SkippedFile(rel, "dangling link")
                        continue
                    if not target.is_relative_to(root):
                        yield SkippedFile(rel, "link leads outside the indexed folder")
                        continue
                stat = path.stat()
            except OSError as exc:
                yield SkippedFile(rel, f"cannot read: {exc.strerror}")
                continue
            key = (stat.st_dev, stat.st_ino)
            if key in seen:
                continue  # the same file or folder reached twice, through a link
            seen.add(key)
            if entry.is_dir():
                if entry.name in SKIP_DIRS or path.resolve() in excluded or _is_virtualenv(path):
                    continue
                subfolders.append(path)
            elif entry.is_file():
                yield SourceFile(rel, path, stat.st_size, stat.st_mtime)
        # Reverse so that popping from the stack visits subfolders in name order.
        stack.extend(reversed(subfolders))


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
