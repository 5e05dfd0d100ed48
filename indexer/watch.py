"""``semindex watch``: keep an index in step with its folder as files change.

Changes are gathered by ``watchfiles`` (inotify and its peers, or polling), debounced, and each
batch runs one incremental update, so a burst of saves costs one update, not one per file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from indexer.build import build_index, default_index_dir
from indexer.config import BuildConfig, ChunkingConfig
from indexer.errors import InputError, NothingToIndexError, SemindexError
from indexer.manifest import IndexManifest
from indexer.paths import resolve_path
from indexer.records import BuildReport


def watch_folder(
    folder: str | Path,
    index_dir: str | Path | None = None,
    *,
    model: str | None = None,
    chunking: ChunkingConfig | None = None,
    config: BuildConfig | None = None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    debounce_ms: int = 1000,
    on_update: Callable[[BuildReport], None] | None = None,
    on_error: Callable[[SemindexError], None] | None = None,
    stop: threading.Event | None = None,
    force_polling: bool | None = None,
) -> None:
    """Update the index of ``folder`` now, then after every batch of changes, until ``stop`` is set.

    Args:
        folder: The folder of documents.
        index_dir: Where the index lives; ``folder/.semindex`` by default.
        model: Model for a new index (an existing index keeps its own).
        chunking: Chunking for a new index (an existing index keeps its own).
        config: Build settings (default: the reading settings the index was built with).
        include: With the default ``config``: only files matching these patterns.
        exclude: With the default ``config``: leave out files matching these patterns.
        debounce_ms: How long the folder must be quiet before an update starts (a batch that
            keeps growing is cut after 20 times that, or 10 s).
        on_update: Called with the report of each update (and of the first).
        on_error: Called when an update fails; watching goes on (the index keeps its last version).
        stop: Set it to stop watching (from another thread).
        force_polling: Poll the folder instead of using file-system events (None: decide).
    """
    import watchfiles

    root = resolve_path(folder)
    if not root.is_dir():
        raise InputError(f"{folder} is not a folder; pass the folder that holds your documents")
    target = resolve_path(index_dir) if index_dir else default_index_dir(root)
    config = config or _stored_config(target, include, exclude)

    def update(first: bool = False) -> None:
        try:  # the model is loaded by the first update that needs it, then kept (load_embedder caches)
            report = build_index(root, target, model=model, chunking=chunking, config=config)
        except NothingToIndexError as exc:
            if on_error is None:
                raise
            on_error(exc)  # an empty folder is worth watching: documents may arrive
            return
        except SemindexError as exc:
            if on_error is None or first:
                raise  # settings that cannot work (a bad --index, a damaged index) stop at once
            on_error(exc)
            return
        if on_update is not None:
            on_update(report)

    inside = target.resolve()

    def relevant(change: object, path: str) -> bool:
        where = Path(path)
        if where == target or where.is_relative_to(target):
            return False  # our own writes
        try:
            return not where.resolve().is_relative_to(inside)  # reached through a link
        except (OSError, RuntimeError):
            return True

    logging.getLogger("watchfiles").setLevel(logging.ERROR)  # it logs each stop as a warning
    update(first=True)
    for _changes in watchfiles.watch(
        root,
        watch_filter=relevant,
        step=max(50, debounce_ms),  # the quiet time that ends a batch
        debounce=max(10_000, 20 * debounce_ms),  # the longest a batch may grow while changes go on
        stop_event=stop,
        force_polling=force_polling,
        raise_interrupt=False,
    ):
        update()


def _stored_config(target: Path, include: tuple[str, ...], exclude: tuple[str, ...]) -> BuildConfig:
    """Build settings with the reading settings the index was built with (if it exists)."""
    try:
        stored = IndexManifest.load(target).extraction
    except SemindexError:
        return BuildConfig(include=include, exclude=exclude)
    return BuildConfig.from_extraction(stored, include=include, exclude=exclude)
