"""The ONNX query model: the same vectors as torch, kept with the index, and no torch to query."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.errors import ModelError
from indexer.manifest import IndexManifest
from indexer.onnx_model import OnnxQueryEmbedder
from indexer.verify import verify_index
from search import Index
from tests.conftest import ROOT, write_files

QUERIES = [
    "how do bees find flowers",
    "Why is the sky blue?",
    "tidal pools anemones",
    "ÉLAN vital — café au lait, naïve façade",
    "東京の天気はどうですか",
    "Москва и Санкт-Петербург",
    "x",
    "what is " * 300,  # longer than the model's limit: truncated the same way on both paths
    "C++ std::vector<int> & operator<<",
    "   leading and trailing spaces   ",
]


@pytest.fixture(scope="module")
def onnx_index(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder) -> Path:
    folder = ROOT / "sample_corpus"
    target = tmp_path_factory.mktemp("onnx") / "index"
    build_index(folder, target, embedder=embedder)
    return target


def test_onnx_vectors_equal_torch_vectors(onnx_index: Path, embedder: SentenceTransformerEmbedder) -> None:
    """Guards against a query model that drifts from the one that embedded the chunks."""
    manifest = IndexManifest.load(onnx_index)
    assert manifest.query_model is not None and manifest.query_model["check"]["min_cosine"] >= 0.9999
    index = Index.open(onnx_index)
    assert isinstance(index.embedder, OnnxQueryEmbedder)
    ours = index.embedder.embed_queries(QUERIES)
    theirs = embedder.embed_queries(QUERIES)
    cosines = np.sum(ours * theirs, axis=1)
    assert cosines.min() >= 0.9999, cosines
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    single = np.stack([index.embedder.embed_queries([q])[0] for q in QUERIES])  # unpadded, one each
    assert np.sum(single * ours, axis=1).min() >= 0.9999


def test_onnx_and_torch_return_the_same_results(
    onnx_index: Path, embedder: SentenceTransformerEmbedder
) -> None:
    onnx = Index.open(onnx_index)
    torch = Index.open(onnx_index, embedder=embedder)
    for query in QUERIES[:4]:
        a, b = onnx.search(query, k=5, mode="dense"), torch.search(query, k=5, mode="dense")
        assert [(h.path, h.chunk) for h in a] == [(h.path, h.chunk) for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_a_cold_cli_query_does_not_import_torch(onnx_index: Path) -> None:
    """Guards the cold-query path: sentence-transformers and torch cost seconds to import."""
    script = (
        "import sys\nfrom cli.main import run\n"
        f"sys.argv = ['semindex', 'search', 'bees and flowers', '--json', '--index', {str(onnx_index)!r}]\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'sentence_transformers', 'transformers', 'pandas')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    results, heavy = done.stdout.rsplit("HEAVY", 1)
    assert heavy.strip() == "[]"
    assert json.loads(results)["results"][0]["path"].startswith("nature/")


def test_query_model_files_survive_updates_and_are_checked(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Foxes hunt voles under the snow.", "b.txt": "Owls hoot."})
    build_index(folder, embedder=embedder)
    target = folder / ".semindex"
    first = IndexManifest.load(target).query_model
    assert first is not None
    (folder / "b.txt").write_text("Owls hoot at dusk in the old barn.")
    build_index(folder, embedder=embedder)
    assert IndexManifest.load(target).query_model == first, "an update keeps the export"
    model_file = target / first["model"]
    assert model_file.is_file() and verify_index(target).ok
    model_file.unlink()
    report = verify_index(target)
    assert not report.ok and "ONNX query model) is missing" in report.problems[0]
    with pytest.warns(UserWarning, match="loading the model with torch"):
        hits = Index.open(target).search("winter predators", k=1)
    assert hits[0].path == "a.txt"
    with pytest.raises(ModelError, match="cannot be used"):
        Index.open(target, backend="onnx").search("winter predators", k=1)
    report = build_index(folder, embedder=embedder)  # nothing changed but the missing export
    assert report.written and report.chunks_embedded == 0
    again = IndexManifest.load(target).query_model
    assert again is not None and again["model"] != first["model"] and (target / again["model"]).is_file()
    assert verify_index(target).ok and isinstance(Index.open(target).embedder, OnnxQueryEmbedder)


def test_no_query_model_when_not_wanted(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Kelp forests shelter sea otters."})
    build_index(folder, embedder=embedder, config=BuildConfig(query_model=False))
    target = folder / ".semindex"
    assert IndexManifest.load(target).query_model == {"format": "none", "reason": "turned off (--no-onnx)"}
    assert not (target / "query-model").exists()
    build_index(folder, embedder=embedder)  # the choice holds
    assert IndexManifest.load(target).query_model["format"] == "none"  # type: ignore[index]
    index = Index.open(target)
    with pytest.raises(ModelError, match="has no ONNX query model"):
        Index.open(target, backend="onnx").search("otters", k=1)
    assert not isinstance(Index.open(target, embedder=embedder).embedder, OnnxQueryEmbedder)
    assert index.search("otters", k=1)[0].path == "a.txt"
    build_index(folder, embedder=embedder, config=BuildConfig(query_model=True))
    assert isinstance(Index.open(target).embedder, OnnxQueryEmbedder)
    build_index(folder, embedder=embedder, config=BuildConfig(query_model=False))
    assert not (target / "query-model").exists() or not any((target / "query-model").iterdir())


def test_threads_cap_every_library(embedder: SentenceTransformerEmbedder) -> None:
    import os

    import faiss
    import torch
    from threadpoolctl import threadpool_info

    from indexer.threads import chosen_threads, set_threads

    before = (torch.get_num_threads(), faiss.omp_get_max_threads(), dict(os.environ))
    try:
        set_threads(1)
        assert chosen_threads() == 1 and torch.get_num_threads() == 1 and faiss.omp_get_max_threads() == 1
        assert os.environ["OMP_NUM_THREADS"] == "1"
        assert all(pool["num_threads"] == 1 for pool in threadpool_info() if pool["user_api"] == "blas")
        with pytest.raises(ValueError):
            set_threads(0)
    finally:
        import indexer.threads

        indexer.threads._chosen = None
        torch.set_num_threads(before[0])
        faiss.omp_set_num_threads(before[1])
        from threadpoolctl import threadpool_limits

        threadpool_limits(before[1])
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
            if name in before[2]:
                os.environ[name] = before[2][name]
            else:
                os.environ.pop(name, None)


def test_the_int8_query_model_is_close_to_fp32_and_finds_the_same_documents(onnx_index: Path) -> None:
    fp32, int8 = Index.open(onnx_index, backend="onnx"), Index.open(onnx_index, backend="onnx-int8")
    assert isinstance(int8.embedder, OnnxQueryEmbedder) and int8.embedder.quantized
    cosines = np.sum(int8.embed_queries(QUERIES) * fp32.embed_queries(QUERIES), axis=1)
    assert cosines.min() >= 0.97 and cosines.max() < 0.99999, cosines  # close, and really another model
    for query in ("how do bees find flowers", "tidal pools anemones", "sourdough starter feeding"):
        assert [r.path for r in int8.search(query, k=3, mode="dense")] == [
            r.path for r in fp32.search(query, k=3, mode="dense")
        ]


def test_a_server_index_lets_the_query_models_threads_sleep(onnx_index: Path) -> None:
    """A lone caller's query model spins while it waits (faster); a server's sleeps (it leaves
    the CPU to other requests), also after it opens a new version."""
    from server.current import CurrentIndex

    def spinning(index: Index) -> str:
        assert isinstance(index.embedder, OnnxQueryEmbedder)
        options = index.embedder._session.get_session_options()
        return str(options.get_session_config_entry("session.intra_op.allow_spinning"))

    alone, shared = Index.open(onnx_index), Index.open(onnx_index, concurrent=True)
    assert spinning(alone) == "1" and spinning(shared) == "0"
    assert np.allclose(alone.embed_queries(QUERIES[:3]), shared.embed_queries(QUERIES[:3]), atol=1e-6)
    served = CurrentIndex(onnx_index, None, "auto")
    assert spinning(served.get()) == "0"
