"""`semindex serve` as a user runs it: a process on a port, here with two workers and --int8."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from tests.conftest import ROOT, write_files

FILES = {
    "bees.md": "# Bees\n\nHoneybees find flowers by scent and by the waggle dance of their sisters.",
    "tides.txt": "The moon's gravity pulls the oceans, which makes the tides rise and fall twice a day.",
    "bread.txt": "Sourdough bread rises because wild yeast and bacteria ferment the dough.",
}


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_two_workers_with_the_int8_model_answer_in_parallel(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    folder = write_files(tmp_path / "docs", FILES)
    build_index(folder, embedder=embedder)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "cli",
        "serve",
        "--index",
        str(folder / ".semindex"),
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        [*command, "--workers", "2", "--int8", "--token", "s3cret"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if _get(f"{base}/api/health", "s3cret")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.3)
        assert _get(f"{base}/api/health")[0] == 401, "every worker asks for the token"
        questions = ["why does the sea rise and fall", "how do bees find flowers", "what makes bread rise"]

        def ask(question: str) -> tuple[int, dict]:
            return _get(f"{base}/api/search?k=1&q={question.replace(' ', '+')}", "s3cret")

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, questions * 4))
        assert {status for status, _ in answers} == {200}
        tops = {body["query"]: body["results"][0]["path"] for _, body in answers}
        assert tops == {questions[0]: "tides.txt", questions[1]: "bees.md", questions[2]: "bread.txt"}
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "with 2 workers" in (server.stderr.read() if server.stderr else "")


@pytest.mark.parametrize("command", [["serve"], ["serve", "--workers", "2"], ["mcp"]])
def test_a_missing_index_is_one_line_before_anything_starts(tmp_path: Path, command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", *command, "--index", str(tmp_path / "nothing" / ".semindex")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no index" in lines[0].lower() and "Traceback" not in result.stderr, lines
