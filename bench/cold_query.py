"""Cold terminal queries: ``semindex search`` as a new process against the straightforward path.

Builds (once) an index of at least ``--chunks`` passages of real text: consecutive sentences of
the SciFact abstracts, one record each. The build is the real one (reading, chunking with the
model's tokenizer, keyword postings, file table, the ONNX query model) except that the vectors
are random unit vectors: embedding 100k passages takes hours on 2 cores, and a cold query's cost
does not depend on which vectors are stored. Then, side by side in one run, for the same queries:

- ``semindex search QUERY --json`` in a new process (the index's ONNX query model, no torch);
- the same through the API with ``backend="torch"`` (sentence-transformers loads the model);
- the straightforward path: import sentence-transformers, load the model, encode the query,
  read every FAISS part, search, read the hits' rows from Parquet.

Each is timed as wall time of a fresh process; the median of ``--runs`` queries is printed with
its ratio to the straightforward path. Also printed: how close the ONNX query vectors are to
torch's for the same queries (cosine).

    python bench/cold_query.py [--data ../shared/data/scifact] [--chunks 100000] [--runs 7]

The data is for evaluation only: it is written under bench/.work/ (git-ignored), never committed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STRAIGHTFORWARD = """
import sys, json, glob
from sentence_transformers import SentenceTransformer
import faiss, numpy as np, pyarrow.parquet as pq
from indexer.models import default_model_dir
index, query = sys.argv[1], sys.argv[2]
model = SentenceTransformer(str(default_model_dir()), device="cpu")
vector = model.encode([query], normalize_embeddings=True).astype("float32")
hits = []
for path in sorted(glob.glob(index + "/vectors/*.faiss")):
    scores, ids = faiss.read_index(path).search(vector, 10)
    part = path.rsplit("/", 1)[1][:-6]
    hits += [(float(s), part, int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0]
hits = sorted(hits, reverse=True)[:10]
out = []
for score, part, row in hits:
    table = pq.read_table(index + "/chunks/" + part + ".parquet", columns=["path", "text"])
    out.append({"score": score, "path": table["path"][row].as_py(), "text": table["text"][row].as_py()})
print(json.dumps(out))
"""

TORCH_API = """
import sys, json
from search import Index
hits = Index.open(sys.argv[1], backend="torch").search(sys.argv[2], k=10)
print(json.dumps([h.path for h in hits]))
"""


def passages(corpus: Path, wanted: int) -> list[dict[str, str]]:
    """Records of 1, 2 or 3 consecutive sentences of the abstracts, until ``wanted`` are made."""
    abstracts = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines() if line]
    split = [
        (str(a["_id"]), [s for s in re.split(r"(?<=[.!?])\s+", a.get("text", "")) if len(s) > 20])
        for a in abstracts
    ]
    out: list[dict[str, str]] = []
    for width in (1, 2, 3, 4, 5, 6):
        for doc_id, sentences in split:
            for start in range(0, max(0, len(sentences) - width + 1)):
                text = " ".join(sentences[start : start + width])
                out.append({"_id": f"{doc_id}-{width}-{start}", "text": text})
                if len(out) >= wanted:
                    return out
    return out


def build(folder: Path, corpus: Path, wanted: int) -> Path:
    """The benchmark index (built once; reused while it holds ``wanted`` chunks)."""
    import numpy as np

    from indexer.build import build_index
    from indexer.config import BuildConfig
    from indexer.embedding import SentenceTransformerEmbedder, load_embedder
    from indexer.manifest import IndexManifest

    target = folder / ".semindex"
    if (target / "manifest.json").is_file() and IndexManifest.load(target).counts["chunks"] >= wanted:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "passages.jsonl", "w", encoding="utf-8") as handle:
        for record in passages(corpus, wanted):
            handle.write(json.dumps(record) + "\n")
    real = load_embedder()

    class RandomVectors(SentenceTransformerEmbedder):
        """The real model (name, tokenizer, ONNX export) with random unit vectors for chunks."""

        def __init__(self) -> None:
            self.__dict__.update(real.__dict__)
            self._rng = np.random.default_rng(0)

        def embed_documents(self, texts, batch_size=32):  # type: ignore[no-untyped-def]
            vectors = self._rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    started = time.perf_counter()
    report = build_index(folder, embedder=RandomVectors(), config=BuildConfig(records=True), rebuild=True)
    print(f"built {report.chunks} chunks in {time.perf_counter() - started:.0f} s", flush=True)
    return target


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"{' '.join(command[:4])} failed: {done.stderr.strip()[-500:]}")
    return seconds, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--work", type=Path, default=ROOT / "bench" / ".work" / "cold")
    args = parser.parse_args()
    target = build(args.work / "passages", args.data / "corpus.jsonl", args.chunks)
    manifest = json.loads((target / "manifest.json").read_text())
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(
        f"index: {manifest['counts']['chunks']:,} chunks in {manifest['counts']['parts']} parts, "
        f"{size / 1e6:.0f} MB on disk ({size / manifest['counts']['chunks']:.0f} bytes a chunk, "
        f"{manifest['query_model']['bytes'] / 1e6:.0f} MB of it the ONNX query model)"
    )
    queries = [json.loads(line)["text"] for line in (args.data / "queries.jsonl").open()][: args.runs]
    py = sys.executable
    paths = {
        "semindex search (ONNX, new process)": lambda q: (
            [py, "-m", "cli", "search", q, "--json", "--index", str(target)]
        ),
        "API, backend='torch' (new process)": lambda q: [py, "-c", TORCH_API, str(target), q],
        "straightforward sentence-transformers": lambda q: [py, "-c", STRAIGHTFORWARD, str(target), q],
    }
    timed(paths["semindex search (ONNX, new process)"](queries[0]))  # warm the page cache for all
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    for query in queries:  # interleaved, so that load on the machine hits every path alike
        for name, command in paths.items():
            seconds[name].append(timed(command(query))[0])
    base = statistics.median(seconds["straightforward sentence-transformers"])
    print(f"\n{'path':40} {'median s':>9} {'min s':>7} {'max s':>7} {'vs straightforward':>19}")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"{name:40} {median:9.3f} {min(values):7.3f} {max(values):7.3f} {median / base:18.2f}x")
    from indexer.embedding import load_embedder
    from search import Index

    onnx = Index.open(target).embedder.embed_queries(queries)
    torch_vectors = load_embedder().embed_queries(queries)
    cosines = (onnx * torch_vectors).sum(axis=1)
    print(f"\nONNX vs torch query vectors over {len(queries)} queries: min cosine {cosines.min():.7f}")


if __name__ == "__main__":
    main()
