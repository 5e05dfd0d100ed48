"""The exceptions semindex raises; every message says what to do next."""

from __future__ import annotations

REBUILD_HINT = "rebuild it with: semindex index FOLDER --rebuild"


class SemindexError(Exception):
    """Base class of every error semindex raises on purpose."""


class InputError(SemindexError):
    """The folder, file or argument given by the user cannot be used."""


class NothingToIndexError(InputError):
    """The folder holds no file with indexable text."""


class StrictModeError(InputError):
    """A file failed to read or parse and ``--strict`` asked for failures to stop the build."""


class QueryError(InputError):
    """A search request is malformed (empty query, k < 1, ...)."""


class IndexNotFoundError(SemindexError):
    """No index exists where one was expected."""


class IndexCorruptError(SemindexError):
    """An index's files are missing, truncated, foreign or inconsistent."""


class ModelError(SemindexError):
    """An embedding model cannot be found or loaded."""


class ModelMismatchError(ModelError):
    """The model asked for differs from the one the index was built with."""


class IndexWriteError(SemindexError):
    """The index cannot be written where it was asked to go (permissions, disk space, ...)."""


class IndexLockedError(SemindexError):
    """Another process is writing the same index."""


class IndexExistsError(SemindexError):
    """An index built with other settings already exists where a new one would be written."""
