"""The HTTP server under load: queries/s and p50/p99 latency at several concurrencies, on loopback.

Builds (once, then reuses) an index of SciFact's corpus (one ``<_id>.txt`` per abstract, as
``bench/scifact.py`` writes it), starts ``semindex serve`` on it as a separate process, and
drives ``GET /api/search`` with SciFact's real query texts (all 1,109, in turn, so every query
is embedded for real) from a small asyncio client with keep-alive connections, one per worker.
For each concurrency it runs a bounded number of requests (and at most ``--seconds``) after a
warm-up, and prints requests, errors, queries/s, p50 and p99. It does so for several server
settings, one server after the other: the default fp32 query model or ``--int8`` (an int8 copy
of it), in one process or ``--workers 2``.

Then the same at ``--switch-concurrency`` while an index update switches versions: a few
documents are edited and ``semindex index`` writes a new version while the load runs; it
prints the same figures for the window of the update, and which versions the answers came from.

    python bench/load.py [--data ../shared/data/scifact] [--concurrency 1,8,32] [--requests 1000]
                         [--seconds 20] [--mode hybrid] [--server-threads N]
                         [--servers fp32,int8,fp32-2w,int8-2w]

Target on this 2-core machine (issue 7): >= 150 queries/s at concurrency 8 with p99 <= 100 ms,
zero errors. The data is for evaluation only: it is written under bench/.work/, never committed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMINDEX = [sys.executable, "-m", "cli"]
sys.path.insert(0, str(ROOT / "bench"))

from scifact import write_corpus  # noqa: E402

# The server settings measured (one server after the other, each through every concurrency).
VARIANTS = {
    "fp32": [],
    "int8": ["--int8"],
    "fp32-2w": ["--workers", "2"],
    "int8-2w": ["--int8", "--workers", "2"],
}
VERSION = re.compile(rb'"version":\s*(\d+)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def read_queries(data: Path) -> list[str]:
    with open(data / "queries.jsonl", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def ensure_index(data: Path, work: Path) -> tuple[Path, Path]:
    folder, index = work / "corpus", work / "index"
    if not (index / "manifest.json").exists():
        print("building the SciFact index (once)...", file=sys.stderr)
        write_corpus(data / "corpus.jsonl", folder)
        subprocess.run([*SEMINDEX, "index", str(folder), "--index", str(index), "--quiet"], check=True)
    return folder, index


def start_server(index: Path, port: int, threads: int | None, flags: list[str]) -> subprocess.Popen:
    command = [*SEMINDEX, "serve", "--index", str(index), "--port", str(port), *flags]
    if threads:
        command += ["--threads", str(threads)]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    sys.exit(f"the server did not start: {server.stderr.read() if server.stderr else ''}")


class Load:
    """Workers sending queries in turn over keep-alive connections; latencies and errors kept."""

    def __init__(self, port: int, paths: list[bytes]) -> None:
        self.port, self.paths = port, paths
        self.next = 0
        self.latencies: list[tuple[float, float]] = []  # (finished at, seconds)
        self.errors: list[str] = []
        self.versions: set[int] = set()

    def request(self) -> bytes:
        path = self.paths[self.next % len(self.paths)]
        self.next += 1
        return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"

    async def worker(self, budget: list[int], stop_at: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            while budget[0] > 0 and time.monotonic() < stop_at:
                budget[0] -= 1
                started = time.perf_counter()
                writer.write(self.request())
                status, body = await self.response(reader)
                finished = time.perf_counter()
                if status != 200:
                    self.errors.append(f"{status}: {body[:200]!r}")
                    continue
                found = VERSION.search(body)
                if found:
                    self.versions.add(int(found.group(1)))
                self.latencies.append((finished, finished - started))
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.errors.append(f"connection: {exc!r}")
        finally:
            writer.close()

    @staticmethod
    async def response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await reader.readexactly(length)

    async def run(self, concurrency: int, requests: int, seconds: float) -> None:
        budget = [requests]
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(self.worker(budget, stop_at) for _ in range(concurrency)))


def figures(latencies: list[tuple[float, float]], errors: int, seconds: float) -> dict[str, float]:
    times = sorted(t for _, t in latencies)
    if not times:
        return {"requests": 0, "errors": errors, "qps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "requests": len(times),
        "errors": errors,
        "qps": len(times) / seconds,
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * times[min(len(times) - 1, int(0.99 * len(times)))],
    }


def measure(port: int, paths: list[bytes], concurrency: int, requests: int, seconds: float) -> dict:
    warm = Load(port, paths[-50:])
    asyncio.run(warm.run(concurrency, 2 * concurrency, 30))  # connections and threads started
    load = Load(port, paths)
    started = time.perf_counter()
    asyncio.run(load.run(concurrency, requests, seconds))
    elapsed = time.perf_counter() - started
    if load.errors:
        print(f"  first error: {load.errors[0]}", file=sys.stderr)
    return figures(load.latencies, len(load.errors), elapsed) | {"versions": sorted(load.versions)}


REVISED = re.compile(r"\nRevised \d+\.\n$")


def edit_documents(folder: Path, count: int, stamp: str) -> None:
    """Give the first ``count`` documents a new last line (replacing an earlier run's)."""
    for path in sorted(folder.glob("*.txt"))[:count]:
        text = REVISED.sub("", path.read_text(encoding="utf-8"))
        path.write_text(f"{text}\nRevised {stamp}.\n", encoding="utf-8")


def measure_switch(port: int, paths: list[bytes], folder: Path, index: Path, concurrency: int,
                   edits: int) -> dict:  # fmt: skip
    """Load at ``concurrency`` while ``semindex index`` writes a new version; the update's window only."""
    edit_documents(folder, edits, time.strftime("%Y%m%d%H%M%S"))
    load = Load(port, paths)

    async def both() -> tuple[float, float]:
        runner = asyncio.ensure_future(load.run(concurrency, 10**9, 600))
        await asyncio.sleep(1.0)
        began = time.perf_counter()
        update = await asyncio.create_subprocess_exec(
            *SEMINDEX, "index", str(folder), "--index", str(index), "--quiet"
        )
        await update.wait()
        await asyncio.sleep(1.5)  # past the server's next look at the manifest (every 0.5 s)
        ended = time.perf_counter()
        load.next = -(10**12)  # no budget left: workers finish their requests in flight and stop
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        if update.returncode != 0:
            sys.exit(f"the update failed ({update.returncode})")
        return began, ended

    began, ended = asyncio.run(both())
    window = [(at, t) for at, t in load.latencies if began <= at <= ended]
    return figures(window, len(load.errors), ended - began) | {
        "versions": sorted(load.versions),
        "update_s": ended - began - 1.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "load")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--requests", type=int, default=1000, help="At most this many per concurrency.")
    parser.add_argument("--seconds", type=float, default=20.0, help="At most this long per concurrency.")
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "dense", "keyword"])
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--server-threads", type=int, default=None, help="semindex serve --threads.")
    parser.add_argument("--switch-concurrency", type=int, default=8)
    parser.add_argument("--edits", type=int, default=50, help="Documents edited for the version switch.")
    parser.add_argument("--no-switch", action="store_true")
    parser.add_argument(
        "--servers",
        default=",".join(VARIANTS),
        help=f"Server settings to measure, one after the other: {', '.join(VARIANTS)}.",
    )
    args = parser.parse_args()

    folder, index = ensure_index(args.data, args.work)
    queries = read_queries(args.data)
    paths = [
        b"/api/search?" + urllib.parse.urlencode({"q": q, "k": args.k, "mode": args.mode}).encode()
        for q in queries
    ]
    for variant in args.servers.split(","):
        if variant not in VARIANTS:
            sys.exit(f"--servers takes {', '.join(VARIANTS)} (got {variant!r})")
        run_variant(args, variant, folder, index, queries, paths)


def row_line(label: object, row: dict) -> str:
    return (
        f"{label!s:>11} {row['requests']:>9,} {row['errors']:>7} {row['qps']:>10.1f} "
        f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}"
    )


def run_variant(args: argparse.Namespace, variant: str, folder: Path, index: Path, queries: list[str],
                paths: list[bytes]) -> None:  # fmt: skip
    """One server (fp32 or int8 query model) through every concurrency, then a version switch."""
    port = free_port()
    flags = VARIANTS[variant]
    server = start_server(index, port, args.server_threads, flags)
    try:
        chunks = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health"))["chunks"]
        print(f"\nsemindex serve {' '.join(flags)} on {chunks:,} chunks (SciFact), {len(queries):,} distinct "
              f"queries, mode {args.mode}, k={args.k}, {os.cpu_count()} cores")  # fmt: skip
        header = {"requests": "requests", "errors": "errors", "qps": "queries/s", "p50_ms": "p50 ms"}
        print(f"{'concurrency':>11} {header['requests']:>9} {header['errors']:>7} {header['qps']:>10} "
              f"{header['p50_ms']:>8} {'p99 ms':>8}")  # fmt: skip
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            row = measure(port, paths, concurrency, args.requests, args.seconds)
            print(row_line(concurrency, row), flush=True)
        if not args.no_switch:
            row = measure_switch(port, paths, folder, index, args.switch_concurrency, args.edits)
            print(f"{args.switch_concurrency:>11} {row['requests']:>9,} {row['errors']:>7} "
                  f"{row['qps']:>10.1f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}   <- while "
                  f"`semindex index` wrote a new version ({args.edits} documents edited, "
                  f"{row['update_s']:.1f} s; answers from versions {row['versions']})")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
