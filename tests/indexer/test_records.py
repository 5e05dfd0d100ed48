"""Record files: each record of a .jsonl/.json/.parquet/.csv file is its own document."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from indexer.build import build_index
from indexer.config import BuildConfig
from indexer.embedding import SentenceTransformerEmbedder
from search import Index
from tests.conftest import write_files

BEIR = [
    {"_id": "d1", "title": "Sleep", "text": "Deep sleep consolidates memories in the hippocampus."},
    {"_id": "d2", "title": "Volcanoes", "text": "Magma rises through the crust and erupts as lava."},
    {"_id": "d3", "title": "Bread", "text": "Sourdough rises thanks to wild yeast and lactic bacteria."},
]


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def test_beir_corpus_indexes_directly(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(
        tmp_path / "d",
        {
            "corpus.jsonl": jsonl(BEIR) + "{not json\n" + json.dumps({"_id": "d4", "title": ""}) + "\n",
            "log.jsonl": jsonl([{"level": "info", "msg": "started"}]),
        },
    )
    report = build_index(folder, embedder=embedder)
    skipped = {s.path: (s.reason, s.failed) for s in report.skipped}
    assert skipped["corpus.jsonl:4"][0].startswith("invalid JSON") and skipped["corpus.jsonl:4"][1]
    assert skipped["corpus.jsonl#d4"] == ("no text in fields title, text", False)
    index = Index.open(folder / ".semindex", embedder=embedder)
    hit = index.search("how does lava erupt", k=1)[0]
    assert (hit.path, hit.record, hit.start_line, hit.chunk) == ("corpus.jsonl", "d2", 2, 0)
    assert hit.text == "Volcanoes\n\nMagma rises through the crust and erupts as lava."
    logs = [h for h in index.search("started", k=10) if h.path == "log.jsonl"]
    assert logs and logs[0].record is None, "JSON Lines without the record fields are read as text"


def test_other_record_formats(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(
        tmp_path / "d",
        {
            "items.json": json.dumps([{"id": "a", "body": "Glaciers carve U-shaped valleys."}]),
            "rows.csv": "id,body\nb,Bees dance to tell the hive where flowers are.\n",
        },
    )
    pq.write_table(
        pa.table({"id": ["c"], "body": ["Coral polyps build reefs from calcium carbonate."]}),
        folder / "table.parquet",
    )
    config = BuildConfig(records=True, id_field="id", text_fields=("body",))
    build_index(folder, embedder=embedder, config=config)
    index = Index.open(folder / ".semindex", embedder=embedder)
    found = {q: index.search(q, k=1)[0] for q in ("glacier valleys", "honeybee dance", "coral reef growth")}
    assert [(h.path, h.record) for h in found.values()] == [
        ("items.json", "a"),
        ("rows.csv", "b"),
        ("table.parquet", "c"),
    ]
    assert found["honeybee dance"].start_line == 2


def test_no_records_reads_files_as_text(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(tmp_path / "d", {"corpus.jsonl": jsonl(BEIR)})
    build_index(folder, embedder=embedder, config=BuildConfig(records=False))
    rows = pq.read_table(folder / ".semindex" / "chunks").to_pylist()
    assert len(rows) == 1 and rows[0]["record"] is None and '"_id": "d1"' in rows[0]["text"]


def test_record_detection_and_odd_files(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> None:
    folder = write_files(
        tmp_path / "d",
        {
            "one-line.json": json.dumps(BEIR[:1]),
            "pretty.json": json.dumps(BEIR[1:2], indent=2),
            "empty.jsonl": "\n\n",
            "deep.jsonl": "[" * 100_000 + "\n" + json.dumps(BEIR[2]) + "\n",
        },
    )
    pq.write_table(
        pa.table({"_id": ["t"], "text": [pa.scalar(1_700_000_000_000_000, pa.timestamp("us"))]}),
        folder / "times.parquet",
    )
    report = build_index(folder, embedder=embedder, config=BuildConfig(records=True))
    skipped = {s.path: s.reason for s in report.skipped}
    assert skipped["empty.jsonl"] == "no records"
    assert skipped["deep.jsonl:1"] in ("JSON nested too deeply",) or skipped["deep.jsonl:1"].startswith(
        "invalid JSON"
    )
    rows = pq.read_table(folder / ".semindex" / "chunks").to_pylist()
    assert {(r["path"], r["record"]) for r in rows} == {
        ("one-line.json", "d1"),
        ("pretty.json", "d2"),
        ("deep.jsonl", "d3"),
        ("times.parquet", "t"),
    }
    auto = write_files(tmp_path / "auto", {"one-line.json": json.dumps(BEIR[:1])})
    build_index(auto, embedder=embedder)
    assert pq.read_table(auto / ".semindex" / "chunks").column("record").to_pylist() == ["d1"]
