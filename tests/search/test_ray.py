"""Search over parts held by Ray actors: the same answers as a local search and as one flat index.

Runs on a local Ray instance (``ray.init(num_cpus=2)``), stopped after; skipped without ray.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from indexer.manifest import IndexManifest
from search import Index
from tests.conftest import SAMPLE_CORPUS

pytest.importorskip("ray", reason='ray is not installed (pip install "semindex[ray]")')

QUERIES = ["effects of sleep on memory", "how do bees find flowers", "printing press", "sourdough starter"]


@pytest.fixture(scope="module")
def indexes(
    tmp_path_factory: pytest.TempPathFactory, embedder: SentenceTransformerEmbedder
) -> tuple[Path, Path]:
    """sample_corpus/ as one flat part, and again in parts of 40 rows."""
    one = tmp_path_factory.mktemp("one") / "index"
    build_index(SAMPLE_CORPUS, one, embedder=embedder)
    many = tmp_path_factory.mktemp("many") / "index"
    build_index(SAMPLE_CORPUS, many, embedder=embedder, config=BuildConfig(part_rows=40))
    assert len(IndexManifest.load(one).part_refs) == 1 and len(IndexManifest.load(many).part_refs) >= 3
    return one, many


def _answers(index: Index, mode: str) -> list[list[tuple[str, int, float]]]:
    return [
        [(r.path, r.chunk, r.score) for r in index.search(q, k=8, mode=mode, per_doc=None)] for q in QUERIES
    ]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_ray_actors_answer_as_the_local_parts_and_as_one_flat_index(
    local_ray: Path, indexes: tuple[Path, Path], mode: str
) -> None:
    one, many = indexes
    flat = _answers(Index.open(one), mode)
    local = _answers(Index.open(many), mode)
    sharded = Index.open(many, engine="ray", shards=2)
    assert len(sharded._shards.actors) == 2
    held = _answers(sharded, mode)
    for expected, got in ((flat, local), (flat, held)):
        assert [[(p, c) for p, c, _ in hits] for hits in got] == [
            [(p, c) for p, c, _ in hits] for hits in expected
        ]
        for want, have in zip(expected, got, strict=True):
            assert [s for _, _, s in have] == pytest.approx([s for _, _, s in want], abs=1e-5)


def test_filters_reach_the_actors(local_ray: Path, indexes: tuple[Path, Path]) -> None:
    _, many = indexes
    sharded, local = Index.open(many, engine="ray", shards=3), Index.open(many)
    for index in (sharded, local):
        hits = index.search("bread", k=5, mode="dense", path="cooking/", per_doc=None)
        assert hits and {h.path.split("/")[0] for h in hits} == {"cooking"}
    assert [h.path for h in sharded.search("bread", k=5, mode="dense", path="cooking/")] == [
        h.path for h in local.search("bread", k=5, mode="dense", path="cooking/")
    ]


def test_search_cli_with_the_ray_engine(local_ray: Path, indexes: tuple[Path, Path]) -> None:
    from tests.cli.test_cli import invoke

    _, many = indexes
    answers = {}
    for engine in ("local", "ray"):
        result = invoke(
            "search", "how do bees find flowers", "--index", str(many), "--json", "--engine", engine
        )
        assert result.exit_code == 0, result.stderr
        answers[engine] = [(r["path"], r["chunk"]) for r in json.loads(result.stdout)["results"]]
    assert (
        answers["ray"] == answers["local"]
        and answers["ray"][0][0] == "nature/bee-colonies-and-pollination.md"
    )
    bad = invoke("search", "bees", "--index", str(many), "--engine", "spark")
    assert bad.exit_code == 2 and "--engine must be local or ray" in bad.stderr
