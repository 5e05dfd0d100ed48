"""The HTTP API, with the real model: answers, limits, the token, and new versions picked up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import server.app as server_app
import server.current as server_current
from indexer.build import build_index
from indexer.embedding import SentenceTransformerEmbedder
from search import Index
from server.app import create_app
from tests.conftest import write_files

FILES = {
    "bees.md": "# Bees\n\nHoneybees find flowers by scent and by the waggle dance of their sisters.",
    "tides.txt": "The moon's gravity pulls the oceans, which makes the tides rise and fall twice a day.",
    "bread.txt": "Sourdough bread rises because wild yeast and bacteria ferment the dough.",
}


@pytest.fixture
def served(tmp_path: Path, embedder: SentenceTransformerEmbedder) -> tuple[Path, Path]:
    folder = write_files(tmp_path / "docs", FILES)
    build_index(folder, embedder=embedder)
    return folder, folder / ".semindex"


def test_search_info_and_health(served: tuple[Path, Path], embedder: SentenceTransformerEmbedder) -> None:
    _folder, target = served
    client = TestClient(create_app(target))
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["chunks"] == 3 and health["version"] == 1
    info = client.get("/api/info").json()
    assert info["chunks"] == 3 and info["model"].endswith("all-MiniLM-L6-v2") and "path" not in info
    answer = client.get("/api/search", params={"q": "why does the sea rise and fall", "k": 2})
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert results[0]["path"] == "tides.txt" and len(results) == 2
    expected = Index.open(target, embedder=embedder).search("why does the sea rise and fall", k=2)
    wanted = [json.loads(json.dumps(h.to_dict())) for h in expected]  # as search --json prints them
    assert [list(r) for r in results] == [list(w) for w in wanted]
    assert [(r["path"], r["chunk"], r["snippet"]) for r in results] == [
        (w["path"], w["chunk"], w["snippet"]) for w in wanted
    ]
    assert [r["cosine"] for r in results] == pytest.approx([w["cosine"] for w in wanted], abs=1e-5)
    keyword = client.get("/api/search", params={"q": "sourdough", "mode": "keyword", "ext": "txt"}).json()
    assert [r["path"] for r in keyword["results"]] == ["bread.txt"]
    many = client.post("/api/search", json={"queries": ["flowers and scent", "yeast"], "k": 1}).json()
    assert [r["results"][0]["path"] for r in many["results"]] == ["bees.md", "bread.txt"]
    assert client.get("/docs").status_code == 200 and "/api/search" in client.get("/openapi.json").text


def test_limits_and_errors_are_clear_4xx(served: tuple[Path, Path]) -> None:
    _, target = served
    client = TestClient(create_app(target))
    for params, said in (
        ({"q": "x", "k": 101}, "k: Input should be less than or equal to 100"),
        ({"q": "x", "k": 0}, "k: Input should be greater than or equal to 1"),
        ({"q": "x", "k": "abc"}, "k: Input should be a valid integer, unable to parse string as an integer"),
        ({"q": "x" * 10_001}, "q: String should have at most 10000 characters"),
        ({}, "q: is required"),
    ):
        refused = client.get("/api/search", params=params)
        assert refused.status_code == 422 and refused.json() == {"error": said}, refused.text
    too_many = client.post("/api/search", json={"queries": ["q"], "k": 500})
    assert too_many.status_code == 422 and too_many.json()["error"].startswith("k: ")
    empty = client.get("/api/search", params={"q": "   "})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
    bad_mode = client.get("/api/search", params={"q": "bees", "mode": "fuzzy"})
    assert bad_mode.status_code == 400 and "mode" in bad_mode.json()["error"]
    huge = client.post("/api/search", content=b"{" + b" " * (server_app.MAX_BODY_BYTES + 1) + b"}",
                       headers={"content-type": "application/json"})  # fmt: skip
    assert huge.status_code == 413

    def pieces() -> object:  # no Content-Length: the body arrives chunked and is counted as it comes
        yield b'{"queries": ["bees"], "pad": "'
        for _ in range(server_app.MAX_BODY_BYTES // 65_536 + 1):
            yield b"x" * 65_536
        yield b'"}'

    streamed = client.post("/api/search", content=pieces(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "over" in streamed.json()["error"]
    assert client.post("/api/search", json={"queries": ["q"] * 65}).status_code == 422
    for response in (empty, bad_mode, huge):
        assert "Traceback" not in response.text and str(target) not in response.text


def test_token_is_required_on_every_api_call(served: tuple[Path, Path]) -> None:
    _, target = served
    client = TestClient(create_app(target, token="s3cret"))
    for path in ("/api/health", "/api/info", "/api/search?q=bees"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_new_version_is_served_without_a_restart(
    served: tuple[Path, Path], embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server_current, "RELOAD_CHECK_SECONDS", 0.0)
    folder, target = served
    client = TestClient(create_app(target))
    before = client.get("/api/search", params={"q": "volcano eruption lava", "k": 1}).json()
    assert before["version"] == 1 and before["results"][0]["path"] != "volcano.txt"
    (folder / "volcano.txt").write_text("The volcano erupted and lava flowed down to the village.")
    build_index(folder, embedder=embedder)
    after = client.get("/api/search", params={"q": "volcano eruption lava", "k": 1}).json()
    assert after["version"] == 2 and after["results"][0]["path"] == "volcano.txt"
    assert client.get("/api/health").json()["chunks"] == 4


def test_documents_show_text_and_offsets_and_nothing_else(served: tuple[Path, Path], tmp_path: Path) -> None:
    folder, target = served
    (tmp_path / "secret.txt").write_text("outside the indexed folder")
    (folder / "link.txt").symlink_to(tmp_path / "secret.txt")  # not indexed: it leads outside
    client = TestClient(create_app(target))
    shown = client.get("/api/documents/bees.md", params={"chunk": 0})
    assert shown.status_code == 200
    body = shown.json()
    assert body["text"] == FILES["bees.md"] and body["changed_since_indexed"] is False
    start, end = body["highlight"]["char_start"], body["highlight"]["char_end"]
    assert "waggle dance" in body["text"][start:end]
    for bad in (
        "../secret.txt",
        "%2e%2e/secret.txt",
        "..%2fsecret.txt",
        str(tmp_path / "secret.txt"),
        "/etc/passwd",
        "link.txt",
        ".semindex/manifest.json",
        "missing.txt",
    ):
        response = client.get(f"/api/documents/{bad}")
        assert response.status_code == 404, bad
        assert "outside" not in response.text and str(tmp_path) not in response.text
    assert client.get("/api/documents/bees.md", params={"chunk": 9}).status_code == 404


def test_errors_are_one_line_json_and_foreign_host_names_are_refused(served: tuple[Path, Path]) -> None:
    _, target = served
    client = TestClient(create_app(target, hosts=server_app.LOCAL_HOSTS), base_url="http://127.0.0.1:8765")
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/health", headers={"host": "localhost:8765"}).status_code == 200
    assert client.get("/api/health", headers={"host": "[::1]:8765"}).status_code == 200
    rebound = client.get("/api/documents/bees.md", headers={"host": "attacker.example:8765"})
    assert rebound.status_code == 400 and "Host" in rebound.json()["error"]  # DNS rebinding
    for response, status in (
        (
            client.post(
                "/api/search",
                content=b'{"queries": ["owl"], "k": NaN}',
                headers={"content-type": "application/json"},
            ),
            422,
        ),
        (client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"}), 422),
        (client.get("/api/nothing"), 404),
        (client.delete("/api/search"), 405),
        (client.get("/api/documents/bees.md", params={"chunk": "abc"}), 422),
    ):
        assert response.status_code == status, (response.status_code, response.text)
        body = response.json()
        assert list(body) == ["error"] and "\n" not in body["error"] and "NaN" not in body["error"], body
