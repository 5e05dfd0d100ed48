"""Keeping a module out of a process for a while: pyarrow imports pandas (0.2 s) the first time
it builds or converts a table, when pandas is installed, and a query never needs it.

``keep_out("pandas")`` makes imports of it fail as if it were not installed; ``let_in()`` undoes
that, and must run before anything that does need it (sentence-transformers and transformers,
which probe for pandas) is imported.
"""

from __future__ import annotations

import sys
from typing import Any


class _KeepOut:
    """An import finder that reports the named modules missing."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".", 1)[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


def keep_out(*names: str) -> None:
    """Make importing ``names`` fail until ``let_in`` (no effect on modules already imported)."""
    wanted = tuple(n for n in names if n not in sys.modules)
    if wanted and not any(isinstance(f, _KeepOut) for f in sys.meta_path):
        sys.meta_path.insert(0, _KeepOut(wanted))


def let_in() -> None:
    """Undo ``keep_out``."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _KeepOut)]
