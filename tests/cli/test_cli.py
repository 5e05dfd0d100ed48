"""The command line, run in-process with the real model: exit codes, JSON contract, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from search.results import JSON_FIELDS
from tests.conftest import write_files

runner = CliRunner()


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, list(args), input=input)


def assert_one_line_error(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_index_then_search(tmp_path: Path) -> None:
    folder = write_files(
        tmp_path / "notes",
        {
            "sleep.md": "# Sleep\n\nDeep sleep helps the brain consolidate new memories.",
            "soup.txt": "Tomato soup needs ripe tomatoes, garlic and olive oil.",
            "empty.txt": "",
            "blob.dat": b"\x00\xff\x00\xfe" * 64,
        },
    )
    result = invoke("index", str(folder))
    assert result.exit_code == 0, result.stderr
    assert "Indexed 2 files" in result.stderr
    assert "empty.txt: empty or whitespace-only" in result.stderr
    assert "blob.dat: binary content" in result.stderr
    assert (folder / ".semindex" / "manifest.json").is_file()
    found = invoke("search", "how does sleep affect memory", "--index", str(folder / ".semindex"), "-k", "1")
    assert found.exit_code == 0, found.stderr
    assert "sleep.md:3" in found.stdout, "path:line of the best-matching sentence"


def test_index_json_report(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha text.", "b.bin": b"\x00" * 10})
    result = invoke("index", str(folder), "--json", "--quiet")
    assert result.exit_code == 0 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["files_indexed"] == 1 and report["chunks"] == 1
    assert report["skipped"] == [{"path": "b.bin", "reason": "binary content", "failed": False}]
    assert report["failed"] == 0


def test_search_json_contract(sample_index: Path) -> None:
    result = invoke("search", "effects of sleep on memory", "--index", str(sample_index), "-k", "5", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == ["query", "results"] and data["query"] == "effects of sleep on memory"
    assert len(data["results"]) == 5
    for rank, hit in enumerate(data["results"], start=1):
        assert tuple(hit) == JSON_FIELDS
        assert hit["rank"] == rank and isinstance(hit["score"], float) and -1 <= hit["score"] <= 1
        assert isinstance(hit["chunk"], int) and hit["start_line"] <= hit["end_line"]
    assert data["results"][0]["path"] == "science/sleep-and-memory.md"


def test_search_plain_output(sample_index: Path) -> None:
    result = invoke("search", "sourdough starter", "--index", str(sample_index), "-k", "2")
    assert result.exit_code == 0
    first = result.stdout.splitlines()[0].split()
    assert (
        first[0] == "1." and 0 < float(first[1]) <= 1 and first[2].startswith("cooking/sourdough-bread.md:")
    )


def test_search_finds_the_index_upwards(sample_index: Path, tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "project"
    (home / "deep" / "er").mkdir(parents=True)
    (home / ".semindex").symlink_to(sample_index)
    monkeypatch.chdir(home / "deep" / "er")
    result = invoke("search", "chess", "-k", "1", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["results"][0]["path"] == "misc/chess-openings.md"


def test_queries_file_gives_json_lines_in_order(sample_index: Path, tmp_path: Path) -> None:
    queries = ["compound interest on savings", "bee colonies", "TCP retransmission", "printing press"]
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(queries) + "\n\n", encoding="utf-8")
    result = invoke("search", "--queries", str(path), "--index", str(sample_index), "-k", "3", "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == queries
    assert all(len(line["results"]) == 3 for line in lines)
    from_stdin = invoke(
        "search",
        "--queries",
        "-",
        "--index",
        str(sample_index),
        "-k",
        "3",
        "--json",
        input="\n".join(queries),
    )
    assert from_stdin.stdout == result.stdout


def test_info(sample_index: Path) -> None:
    result = invoke("info", "--index", str(sample_index), "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["model"] == "sentence-transformers/all-MiniLM-L6-v2" and info["dimension"] == 384
    assert info["documents"] == 30 and info["chunks"] > 30 and info["size_bytes"] > 0 and info["created_at"]
    plain = invoke("info", "--index", str(sample_index))
    assert "documents:" in plain.stdout and "size on disk:" in plain.stdout


def test_similarity() -> None:
    texts = [
        "There was a fly drinking from my soup",
        "There is a fly swimming in my juice",
        "The stock market fell today",
    ]
    result = invoke("similarity", *texts, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    matrix = data["matrix"]
    assert data["texts"] == texts and len(matrix) == 3
    for i in range(3):
        assert matrix[i][i] == pytest.approx(1.0, abs=1e-5)
        for j in range(3):
            assert matrix[i][j] == pytest.approx(matrix[j][i], abs=1e-6)
    assert matrix[0][1] > 0.5 > matrix[0][2]
    plain = invoke("similarity", *texts[:2])
    assert plain.exit_code == 0 and len(plain.stdout.splitlines()) == 1
    assert float(plain.stdout.split()[0]) == pytest.approx(matrix[0][1], abs=1e-4)


def test_error_missing_folder(tmp_path: Path) -> None:
    assert_one_line_error(invoke("index", str(tmp_path / "nope")), 1, "does not exist")


def test_error_nothing_to_index(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"empty.txt": "", "img.png": b"\x89PNG"})
    assert_one_line_error(invoke("index", str(folder), "--quiet"), 1, "no indexable text")
    assert not (folder / ".semindex").exists()


def test_error_no_index_found(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("search", "anything"), 1, "no .semindex index")
    assert_one_line_error(invoke("info"), 1, "no .semindex index")
    assert_one_line_error(invoke("search", "x", "--index", str(tmp_path / "none")), 1, "no index at")


def test_error_empty_query(sample_index: Path) -> None:
    assert_one_line_error(invoke("search", "  ", "--index", str(sample_index)), 1, "empty")


def test_error_bad_k(sample_index: Path) -> None:
    assert_one_line_error(invoke("search", "sleep", "--index", str(sample_index), "-k", "0"), 2, "-k must be")


def test_error_model_mismatch(sample_index: Path, tiny_bert: Path) -> None:
    result = invoke("search", "sleep", "--index", str(sample_index), "--model", str(tiny_bert))
    assert_one_line_error(result, 1, "was built with model sentence-transformers/all-MiniLM-L6-v2")


def test_error_model_change_on_reindex(tmp_path: Path, tiny_bert: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha text."})
    assert invoke("index", str(folder), "-q").exit_code == 0
    result = invoke("index", str(folder), "-q", "--model", str(tiny_bert))
    assert_one_line_error(result, 1, "--rebuild")
    assert invoke("index", str(folder), "-q", "--model", str(tiny_bert), "--rebuild").exit_code == 0


def test_usage_errors_exit_2(sample_index: Path) -> None:
    assert_one_line_error(invoke("search", "--index", str(sample_index)), 2, "give either a QUERY")
    assert invoke("search", "x", "--no-such-flag").exit_code == 2
    assert_one_line_error(invoke("similarity", "only one"), 2, "at least two")


def test_index_refuses_to_overwrite_user_folder(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    keep = write_files(tmp_path / "keep", {"thesis.tex": "precious"})
    assert_one_line_error(invoke("index", str(folder), "--index", str(keep), "-q"), 1, "not a semindex index")
    assert (keep / "thesis.tex").read_text() == "precious"


def test_index_never_replaces_the_documents_folder(tmp_path: Path) -> None:
    """Guards against wiping the user's files when --index names the documents folder."""
    folder = write_files(tmp_path / "t1", {"doc.txt": "Alpha.", "manifest.json": '{"name": "my web app"}'})
    assert_one_line_error(invoke("index", str(folder), "--index", str(folder), "-q"), 1, "documents folder")
    assert_one_line_error(invoke("index", str(folder), "--index", str(tmp_path), "-q"), 1, "documents folder")
    webapp = write_files(tmp_path / "webapp", {"manifest.json": '{"name": "app"}', "index.html": "<p>x</p>"})
    assert_one_line_error(
        invoke("index", str(folder), "--index", str(webapp), "-q"), 1, "not a semindex index"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["doc.txt", "manifest.json"]
    assert (webapp / "index.html").exists()


def test_second_writer_fails_at_once(tmp_path: Path) -> None:
    from indexer.store import IndexLock

    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    with IndexLock(folder / ".semindex"):
        assert_one_line_error(invoke("index", str(folder), "-q"), 1, "another semindex process is writing")


def test_unwritable_index_location(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    result = invoke("index", str(folder), "--index", str(folder / "a.txt" / "idx"), "-q")
    assert_one_line_error(result, 1, "cannot")


def test_queries_file_errors(sample_index: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    assert_one_line_error(
        invoke("search", "--queries", str(empty), "--index", str(sample_index)), 1, "no queries"
    )
    long = tmp_path / "long.txt"
    long.write_text("fine\n" + "x" * 20_000 + "\nalso fine\n")
    result = invoke("search", "--queries", str(long), "--index", str(sample_index), "--json")
    assert_one_line_error(result, 1, "query 2 is longer")
    assert result.stdout == "", "nothing is printed before the bad query is found"


def test_undecodable_query(sample_index: Path) -> None:
    result = invoke("search", "bread \udcff", "--index", str(sample_index))
    assert_one_line_error(result, 1, "not valid UTF-8")


def test_bad_chunk_settings_are_usage_errors(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha."})
    assert_one_line_error(invoke("index", str(folder), "--chunk-tokens", "2"), 2, "at least 8")
    assert_one_line_error(invoke("index", str(folder), "--overlap-tokens", "-1"), 2, "cannot be negative")


def test_snippets_are_safe_for_terminals() -> None:
    from cli.output import location, snippet

    assert snippet("red \x1b[31malert\x07") == "red \ufffd[31malert\ufffd"
    assert location("weird\nname.txt", 1, 2) == "weird\ufffdname.txt:1-2"


def test_ingest_options(tmp_path: Path) -> None:
    from tests.pdfgen import make_pdf

    folder = write_files(
        tmp_path / "d",
        {
            "paper.pdf": make_pdf(["Mitochondria make ATP for the cell."]),
            "big.txt": "word " * 400,
            "a.md": "Hi.",
        },
    )
    result = invoke("index", str(folder), "--max-file-size", "1k")
    assert result.exit_code == 0 and "big.txt: larger than the --max-file-size limit" in result.stderr
    found = invoke("search", "cell energy", "--index", str(folder / ".semindex"), "-k", "1")
    assert "paper.pdf#page=1" in found.stdout
    hit = json.loads(invoke("search", "cell energy", "--index", str(folder / ".semindex"), "--json").stdout)
    assert hit["results"][0]["page"] == 1
    assert_one_line_error(invoke("index", str(folder), "--max-file-size", "lots"), 2, "takes a size")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 broken")
    assert_one_line_error(invoke("index", str(folder), "--strict", "-q"), 1, "bad.pdf")
    only_md = invoke("index", str(folder), "--include", "*.md", "-q", "--json")
    assert json.loads(only_md.stdout)["files_indexed"] == 1


def test_reindex_reports_what_it_did(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha text.", "b.txt": "Beta text."})
    assert invoke("index", str(folder), "-q").exit_code == 0
    (folder / "b.txt").write_text("Beta text, revised.")
    result = invoke("index", str(folder))
    assert result.exit_code == 0
    assert (
        "0 added, 1 updated, 0 removed, 1 unchanged; chunks: 1 embedded, 1 reused, 2 in all" in result.stderr
    )
    report = json.loads(invoke("index", str(folder), "-q", "--json").stdout)
    assert (report["files_unchanged"], report["chunks_embedded"], report["chunks_reused"]) == (2, 0, 2)
    assert (report["written"], report["version"]) == (False, 2)
    assert "is up to date: 2 files, 2 chunks" in invoke("index", str(folder)).stderr


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "d", {"a.txt": "Alpha.", "b.txt": "Beta.", "c.txt": "Gamma."})
    assert invoke("index", str(folder), "-q").exit_code == 0
    (folder / "b.txt").write_text("Beta, longer now.")
    (folder / "c.txt").unlink()
    (folder / "d.txt").write_text("Delta.")
    before = {p.name: p.stat().st_mtime_ns for p in (folder / ".semindex").iterdir()}
    result = invoke("index", str(folder), "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert (plan["added"], plan["changed"], plan["removed"], plan["unchanged"]) == (
        ["d.txt"],
        ["b.txt"],
        ["c.txt"],
        ["a.txt"],
    )
    assert {p.name: p.stat().st_mtime_ns for p in (folder / ".semindex").iterdir()} == before
    plain = invoke("index", str(folder), "--dry-run")
    assert "1 to add, 1 to re-read, 1 to remove, 1 unchanged" in plain.stdout


def test_summary_and_patterns_are_safe(tmp_path: Path) -> None:
    folder = write_files(
        tmp_path / "d",
        {"ok.txt": "Fine.", "recs.jsonl": json.dumps({"_id": "e\x1b]0;PWNED\x07", "title": ""}) + "\n"},
    )
    result = invoke("index", str(folder))
    assert result.exit_code == 0 and "\x1b" not in result.stderr and "\x07" not in result.stderr
    assert_one_line_error(invoke("index", str(folder), "--exclude", "!"), 1, "invalid pattern")
