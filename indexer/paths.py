"""Turning the paths users type into absolute ones, with errors that say what is wrong."""

from __future__ import annotations

from pathlib import Path

from indexer.errors import InputError


def resolve_path(path: str | Path) -> Path:
    """``path`` made absolute with links and ``~`` resolved; a link loop is an InputError."""
    try:
        return Path(path).expanduser().resolve()
    except RuntimeError as exc:  # Python 3.11 reports link loops as RuntimeError
        raise InputError(f"{path} is a link loop; point at a real file or folder") from exc
    except OSError as exc:
        raise InputError(f"cannot use {path}: {exc.strerror or exc}") from exc
