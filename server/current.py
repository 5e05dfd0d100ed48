"""The index a long-running server reads: reopened when a new version appears on disk."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from indexer.manifest import MANIFEST_FILE
from search import Index

RELOAD_CHECK_SECONDS = 0.5  # how often a request may look for a newer version on disk


class CurrentIndex:
    """The index being served: reopened when ``manifest.json`` changes, the model kept."""

    def __init__(self, directory: Path, model: str | None = None, backend: str = "auto") -> None:
        self.directory = directory
        self._model = model
        self._lock = threading.Lock()
        # says what is wrong, if anything; concurrent: requests are answered side by side
        self._index = Index.open(directory, model=model, backend=backend, concurrent=True)
        self._stamp = self._manifest_stamp()
        self._index.embedder  # noqa: B018 - loaded now, not by the first request
        self._checked = time.monotonic()

    def _manifest_stamp(self) -> tuple[int, int, int]:
        stat = (self.directory / MANIFEST_FILE).stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_size

    def get(self) -> Index:
        """The newest version on disk (checked at most every ``RELOAD_CHECK_SECONDS``)."""
        now = time.monotonic()
        if now - self._checked < RELOAD_CHECK_SECONDS:
            return self._index
        with self._lock:
            self._checked = now
            try:
                stamp = self._manifest_stamp()
            except OSError:
                return self._index  # mid-switch or gone: keep serving what is open
            if stamp != self._stamp:
                fresh = Index.open(
                    self.directory, model=self._model, embedder=self._index.embedder, concurrent=True
                )
                self._index, self._stamp = fresh, stamp
            return self._index
