"""One cap on CPU threads for every library that starts its own: torch, FAISS (OpenMP), the
BLAS under numpy, and onnxruntime.

Each of them starts one thread per core by default; when two run at once, or beside another
busy process, they oversubscribe the cores and every one of them slows down. ``set_threads``
caps them all together, in whatever order they are (or were already) imported.
"""

from __future__ import annotations

import os
import sys

_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
_chosen: int | None = None


def set_threads(count: int | None) -> None:
    """Cap CPU threads at ``count`` (None: leave every library's default)."""
    global _chosen
    if count is None:
        return
    if count < 1:
        raise ValueError(f"threads must be at least 1 (got {count})")
    _chosen = count
    for name in _ENV:  # libraries not imported yet read these when they start
        os.environ[name] = str(count)
    if "numpy" in sys.modules:
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(count)
        except ImportError:
            pass
    if "faiss" in sys.modules:
        sys.modules["faiss"].omp_set_num_threads(count)
    if "torch" in sys.modules:
        apply_to_torch()


def chosen_threads() -> int | None:
    """The cap ``set_threads`` set, if any."""
    return _chosen


def apply_to_torch() -> None:
    """Apply the cap to torch (called again once torch is imported)."""
    if _chosen is not None and "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(_chosen)
