"""Bulk embedding: the indexing pipeline's throughput against plain SentenceTransformer.encode
on the same chunks, and the tokens/s both reach against this machine's fp32 matmul peak.

Side by side in one run:

1. the machine's fp32 matmul peak, measured with torch (best of several 2048x2048 products);
2. ``semindex index`` of the first ``--docs`` SciFact abstracts (one file each) in a fresh
   process, with ``--no-onnx`` so that only reading, chunking, embedding and writing are timed
   (the ONNX export, a few seconds once per index, is timed on its own after);
3. plain ``SentenceTransformer.encode`` (batch size 32) over the very chunk texts the pipeline
   wrote, in a fresh process.

The model's cost per token is counted from its config (2 FLOPs per weight of each layer, plus
the attention products at the batch's mean length), so tokens/s converts to GFLOPS.

    python bench/embedding.py [--data ../shared/data/scifact] [--docs 1500]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SEMINDEX = [sys.executable, "-m", "cli"]

PEAK = """
import time, torch
torch.manual_seed(0)
a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
best = 0.0
for _ in range(12):
    t = time.perf_counter(); torch.mm(a, b); s = time.perf_counter() - t
    best = max(best, 2 * 2048 ** 3 / s / 1e9)
print(best)
"""

PLAIN = """
import json, sys, time
import pyarrow.parquet as pq
from sentence_transformers import SentenceTransformer
from indexer.models import default_model_dir
texts = pq.read_table(sys.argv[1] + "/chunks", columns=["text"]).column("text").to_pylist()
model = SentenceTransformer(str(default_model_dir()), device="cpu")
started = time.perf_counter()
model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
print(json.dumps({"chunks": len(texts), "seconds": time.perf_counter() - started}))
"""


def flops_per_token(mean_tokens: float) -> float:
    """FLOPs one token costs the default model: weights of every layer, plus attention."""
    from indexer.models import default_model_dir

    config = json.loads((default_model_dir() / "config.json").read_text())  # type: ignore[operator]
    d, ff, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    weights = 4 * d * d + 2 * d * ff  # q, k, v, output projections; the two feed-forward layers
    attention = 2 * 2 * mean_tokens * d  # scores and the weighted sum, per token
    return float(layers * (2 * weights + attention))


def run(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command[:4])} failed: {done.stderr[-1500:]}")
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "embedding")
    args = parser.parse_args()
    from bench.scifact import write_corpus

    peak = float(run([sys.executable, "-c", PEAK]).strip())
    corpus = args.work / "corpus"
    written = write_corpus(args.data / "corpus.jsonl", corpus, args.docs)
    index = args.work / "index"
    build = [*SEMINDEX, "index", str(corpus), "--index", str(index), "--rebuild", "--no-onnx", "-q", "--json"]
    report = json.loads(run(build))
    ours_seconds = report["seconds"] - report["model_seconds"]
    plain = json.loads(run([sys.executable, "-c", PLAIN, str(index)]))
    chunks, tokens = report["chunks"], report["tokens"]
    assert plain["chunks"] == chunks, (plain["chunks"], chunks)
    started = time.perf_counter()
    run([*SEMINDEX, "index", str(corpus), "--index", str(index), "--onnx", "-q"])  # adds the export only
    export_seconds = time.perf_counter() - started
    mean = tokens / max(chunks, 1)
    cost = flops_per_token(mean)
    print(f"{written} SciFact abstracts -> {chunks} chunks, {tokens} tokens ({mean:.0f} a chunk)")
    print(
        f"fp32 matmul peak (torch, 2048x2048): {peak:.1f} GFLOPS; "
        f"the model costs {cost / 1e6:.1f} MFLOP a token"
    )
    print()
    print("| path (same chunks, same run) | seconds | chunks/s | tokens/s | GFLOPS | of peak |")
    print("|---|---|---|---|---|---|")
    for name, seconds in (
        ("semindex index (read + chunk + embed + write)", ours_seconds),
        ("plain SentenceTransformer.encode", plain["seconds"]),
    ):
        rate = tokens / seconds
        print(
            f"| {name} | {seconds:.1f} | {chunks / seconds:.1f} | {rate:.0f} | {rate * cost / 1e9:.1f} | "
            f"{rate * cost / 1e9 / peak:.0%} |"
        )
    print(f"\nratio (ours / plain, chunks/s): {plain['seconds'] / ours_seconds:.3f}")
    print(
        f"adding the ONNX query model afterwards: {export_seconds:.1f} s wall for a whole "
        "`semindex index` run (model load + export + check)"
    )


if __name__ == "__main__":
    main()
