"""Peak memory of ``semindex index`` against corpus size, measured side by side in one run.

Generates folders of mixed documents (Markdown with headings, plain text, HTML, and one 4 MB
text file each) of growing total size from the paragraphs of sample_corpus/, indexes each in
a fresh ``semindex index`` process, and prints the process's peak RSS (from ``wait4``) beside
the corpus size. Memory is bounded when peak RSS stays flat as the corpus grows. A last row
(``--single-file``) indexes one large text file alone: its text is held once, but its chunks
go on to the model and the writer a window at a time, so it costs about its own size, not a
multiple of it.

Embedding gigabytes with the real model takes days on 2 cores, so by default a tiny random
BERT (2 layers, 32 dimensions; made on the fly, with the default model's tokenizer) stands in:
reading, chunking with the real tokenizer, batching and writing parts are the same code, and
those are what could hold memory. ``--model default`` uses the real model instead.

    python bench/memory.py [--sizes 25,50,100] [--single-file 48] [--model tiny|default|NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEMINDEX = [sys.executable, "-m", "cli"]
MB = 1024 * 1024
# A file is read whole and so costs memory in proportion to its own size (up to --max-file-size);
# it is kept the same in every corpus so that only the corpus size varies.
BIG_FILE = 4 * MB


def paragraphs() -> list[str]:
    found = []
    for path in sorted((ROOT / "sample_corpus").rglob("*")):
        if path.suffix in (".md", ".txt", ".rst") and path.is_file():
            text = path.read_text(encoding="utf-8")
            found += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 80 and not p.startswith("#")]
    return found


def write_folder(folder: Path, size: int, pool: list[str], seed: int, big_size: int = BIG_FILE) -> int:
    """Mixed documents totalling about ``size`` bytes, one of them a text file of ``big_size``
    bytes; returns the number of files."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    rng = random.Random(seed)
    big = folder / "big" / "log.txt"  # one large file of the same size in every corpus
    big.parent.mkdir()
    with open(big, "w", encoding="utf-8") as handle:
        written = 0
        while written < min(size, big_size):
            line = f"{rng.choice(pool)} (entry {written})\n\n"
            handle.write(line)
            written += len(line.encode("utf-8"))
    total, count = written, 1
    while total < size:
        kind = rng.random()
        body = [f"{rng.choice(pool)} [{count}-{i}]" for i in range(rng.randint(20, 120))]
        if kind < 0.6:
            text = f"# Note {count}\n\n" + "\n\n".join(
                (f"## Part {i}\n\n{p}" if i % 8 == 0 else p) for i, p in enumerate(body)
            )
            name = f"notes/{count % 97}/note-{count}.md"
        elif kind < 0.9:
            text, name = "\n\n".join(body), f"text/{count % 97}/doc-{count}.txt"
        else:
            paras = "".join(f"<p>{p}</p>\n" for p in body)
            text = f"<html><head><title>Page {count}</title></head><body>{paras}</body></html>"
            name = f"web/{count % 97}/page-{count}.html"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        total += len(text.encode("utf-8"))
        count += 1
    return count


def tiny_model(folder: Path) -> Path:
    """A random 2-layer BERT with the default model's tokenizer (see tests/conftest.py)."""
    from transformers import BertConfig, BertModel

    sys.path.insert(0, str(ROOT))
    from indexer.models import default_model_dir

    if (folder / "config.json").is_file():
        return folder
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(folder)
    source = default_model_dir()
    assert source is not None
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(source / name, folder / name)
    return folder


def index_peak_rss(folder: Path, model: str) -> tuple[float, int, dict]:
    """Index ``folder`` in a new process; wall seconds, peak RSS in bytes, and the report."""
    import tempfile

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [*SEMINDEX, "index", str(folder), "--model", model, "--rebuild", "-q", "--json"],
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not the session's
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            sys.exit(f"semindex index failed: {err.read().strip()}")
        return seconds, usage.ru_maxrss * 1024, json.loads(out.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="25,50,100", help="corpus sizes in MB, comma-separated")
    parser.add_argument(
        "--single-file", type=int, default=48, help="MB of one text file indexed alone (0: none)"
    )
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "memory")
    args = parser.parse_args()
    model = str(tiny_model(args.work / "tiny-bert")) if args.model == "tiny" else args.model
    if args.model == "default":
        model = "sentence-transformers/all-MiniLM-L6-v2"
    pool = paragraphs()
    rows = []
    for number, size_mb in enumerate(int(s) for s in args.sizes.split(",")):
        folder = args.work / f"corpus-{size_mb}mb"
        files = write_folder(folder, size_mb * MB, pool, seed=number)
        rows.append(measure(folder, files, model, ""))
    first, last = rows[0], rows[-1]
    print(
        f"\ncorpus x{last[0] / first[0]:.1f} ({first[0] / MB:.0f} -> {last[0] / MB:.0f} MB): peak RSS "
        f"x{last[4] / first[4]:.2f} ({first[4] / MB:.0f} -> {last[4] / MB:.0f} MB); "
        f"largest peak {max(r[4] for r in rows) / MB:.0f} MB"
    )
    if args.single_file:
        folder = args.work / f"single-{args.single_file}mb"
        size = args.single_file * MB
        single = measure(
            folder, write_folder(folder, size, pool, seed=99, big_size=size), model, "  (one file)"
        )
        print(
            f"one {single[0] / MB:.0f} MB file: peak RSS {single[4] / MB:.0f} MB, "
            f"{(single[4] - first[4]) / MB:+.0f} MB against the {first[0] / MB:.0f} MB corpus of small files"
        )


def measure(folder: Path, files: int, model: str, label: str) -> tuple[int, int, int, float, int]:
    """Index ``folder`` and print one row: bytes, files, chunks, seconds, peak RSS bytes."""
    corpus = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and ".semindex" not in p.parts)
    seconds, peak, report = index_peak_rss(folder, model)
    shutil.rmtree(folder)
    print(
        f"{corpus / MB:8.1f} MB  {files:6} files  {report['chunks']:8} chunks  {seconds:7.1f} s  "
        f"peak RSS {peak / MB:7.1f} MB{label}",
        flush=True,
    )
    return corpus, files, report["chunks"], seconds, peak


if __name__ == "__main__":
    main()
