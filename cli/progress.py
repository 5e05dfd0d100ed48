"""The build's progress bar on stderr: files, chunks, chunks/s and time left."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn


class BuildProgressBar:
    """A progress callback for ``build_index`` that draws on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self._enabled = enabled
        self._progress = Progress(
            TextColumn("{task.description:<13}"),
            BarColumn(),
            TextColumn("files {task.fields[files]}"),
            TextColumn("chunks {task.fields[chunks]}"),
            TextColumn("{task.fields[rate]} chunks/s"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            disable=not enabled,
        )
        self._task: Any = None

    def __enter__(self) -> BuildProgressBar:
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None, files="-", chunks=0, rate="-")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, event: Any) -> None:
        rate = (
            f"{event.chunks_embedded / event.elapsed:.1f}" if event.elapsed and event.chunks_embedded else "-"
        )
        self._progress.update(
            self._task,
            description=event.stage,
            total=event.bytes_total or None,
            completed=event.bytes_done,
            files=f"{event.files_done}/{event.files_total}" if event.files_total else "-",
            chunks=event.chunks_embedded,
            rate=rate,
        )
