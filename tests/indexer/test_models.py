"""Finding and loading models: the packaged default, local folders, plain Hugging Face BERTs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from indexer.build import build_index
from indexer.embedding import SemindexWarning, SentenceTransformerEmbedder
from indexer.errors import ModelError
from indexer.models import default_model_dir, resolve_model
from search import Index
from tests.conftest import write_files


def test_default_model_comes_from_its_package() -> None:
    ref = resolve_model(None)
    assert ref.source == "package" and ref.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert Path(ref.location) == default_model_dir()
    assert resolve_model("all-MiniLM-L6-v2") == ref == resolve_model("sentence-transformers/all-MiniLM-L6-v2")


def test_default_model_settings(embedder: SentenceTransformerEmbedder) -> None:
    described = embedder.describe()
    assert described["dimension"] == 384 and described["pooling"] == "mean"
    assert described["max_seq_length"] == 256 and embedder.token_limit == 254


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds no model"):
        resolve_model(str(tmp_path / "empty"))


def test_unknown_hub_model_fails_with_advice() -> None:
    ref = resolve_model("no-such-org/no-such-model-xyz")
    assert ref.source == "hub"
    with pytest.raises(ModelError, match="pass a local folder with --model"):
        SentenceTransformerEmbedder(ref)


def test_plain_bert_gets_mean_pooling_and_a_warning(tiny_bert: Path, tmp_path: Path) -> None:
    """A raw BERT (as in the tutorial) works, pooled over the attention mask, with a warning."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bert = SentenceTransformerEmbedder(resolve_model(str(tiny_bert)))
    assert any(issubclass(w.category, SemindexWarning) and "not trained" in str(w.message) for w in caught)
    assert bert.pooling == "mean" and bert.dimension == 32
    alone = bert.embed_documents(["Hi"])[0]
    batched = bert.embed_documents(["Hi", "a much longer sentence that forces padding " * 5])[0]
    assert float(alone @ batched) >= 0.9999
    assert np.linalg.norm(alone) == pytest.approx(1.0, abs=1e-5)
    folder = write_files(tmp_path / "docs", {"a.txt": "alpha beta", "b.txt": "gamma delta"})
    build_index(folder, embedder=bert)
    index = Index.open(folder / ".semindex", embedder=bert)
    assert index.manifest.model_name == str(tiny_bert)
    assert len(index.search("alpha beta", k=5)) == 2


def test_local_model_loads_without_touching_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards against hub calls for a model that is on disk (offline machines hang or fail)."""
    import socket

    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a))  # type: ignore[arg-type]
    embedder = SentenceTransformerEmbedder(resolve_model(None))
    assert embedder.embed_queries(["offline"]).shape == (1, 384)
    assert attempts == []


def test_prefixed_families_are_queried_the_way_they_were_built(tiny_bert: Path, tmp_path: Path) -> None:
    """Guards against querying an e5-style index without its "query: " prefix."""
    import json
    import shutil

    from indexer.embedding import family_prefixes

    assert family_prefixes("intfloat/e5-small-v2") == ("query: ", "passage: ")
    assert family_prefixes("BAAI/bge-small-en-v1.5")[0].startswith("Represent this sentence")
    assert family_prefixes("sentence-transformers/all-MiniLM-L6-v2") == ("", "")
    model = tmp_path / "my-e5-small"
    shutil.copytree(tiny_bert, model)
    folder = write_files(tmp_path / "d", {"a.txt": "Bees dance.", "b.txt": "Tides rise."})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SemindexWarning)
        build_index(folder, model=str(model))
        recorded = json.loads((folder / ".semindex" / "manifest.json").read_text())["model"]
        assert (recorded["query_prefix"], recorded["document_prefix"]) == ("query: ", "passage: ")
        index = Index.open(folder)
        direct = index.embedder.embed_queries(["bees"])
        plain = index.embedder.embed_documents(["bees"])  # with "passage: ": a different vector
        assert float(np.dot(direct[0], plain[0])) < 0.9999
        manifest = json.loads((folder / ".semindex" / "manifest.json").read_text())
        manifest["model"]["query_prefix"] = "custom: "
        (folder / ".semindex" / "manifest.json").write_text(json.dumps(manifest))
        assert Index.open(folder).embedder.query_prefix == "custom: ", "the manifest decides"
