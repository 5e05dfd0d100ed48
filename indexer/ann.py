"""Approximate nearest-neighbour structures for large indexes, chosen by size and checked.

Every part keeps its exact vectors in ``vectors/part-<id>.faiss`` (a flat index: the source of
truth for updates, checks and exact scores). Above a size, a part also gets an ANN file,
``ann/part-<fresh id>.faiss``, that search uses instead of scanning every vector:

- ``hnsw``: a graph over each part's vectors (IndexHNSWFlat).
- ``ivf``: vectors bucketed by a k-means quantiser (IndexIVFFlat). The default for large
  indexes: its buckets are shared by all parts, so a query finds its nearest buckets once
  however many parts the index has (an HNSW graph is searched once a part: at 1M chunks in 16
  parts that cost 9 ms a query against about 1 ms for IVF; bench/warm.py).
- ``ivfpq``: the same buckets with vectors compressed to 48 bytes (IndexIVFPQ); candidates are
  re-scored with the exact vectors, so reported scores stay exact cosines. The default for
  very large indexes, where float vectors no longer fit in memory.

The IVF types train one quantiser (and PQ codebook) for the whole index, on a sample drawn
across all its parts; each part adds its vectors to a copy of it, so every part has the same
buckets and a query probes the same regions of every part. The training is kept as long as
the index has not outgrown it (16 times the rows it was trained for); a new part, from an
update or from another machine's build, is added to a copy of the same training.

Parts too small for a trustworthy structure (an IVF needs at least 39 training vectors per
bucket) stay flat. After each write the build measures recall@10 of the whole index against
exact search on sample queries and raises the search effort until it reaches the target.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.manifest import ANN_DIR, IndexManifest, PartRef

INDEX_TYPES = ("flat", "hnsw", "ivf", "ivfpq")
# Below this many chunks an exact scan of every vector takes a few milliseconds (bench/warm.py
# measures it), so the index stays flat; above it, IVF answers in about a millisecond.
FLAT_MAX_ROWS = 100_000
# Above this many, IVF's float vectors (about 1.6 KB a chunk: 3.2 GB at 2M) give way to IVF-PQ
# codes (56 bytes a chunk, exact vectors memory-mapped for re-scoring): docs/scale.md.
IVFPQ_MIN_ROWS = 2_000_000
RETRAIN_GROWTH = 16  # an IVF training is redone once the index holds this many times its rows
MIN_ANN_ROWS = 8_192  # a part smaller than this is scanned exactly
TRAINING_PER_LIST = 39  # FAISS's own floor for k-means: fewer points per centroid is unreliable
TARGET_RECALL = 0.95
CHECK_QUERIES = 200
RERANK = 8  # an ivfpq search reads k * RERANK candidates and re-scores them exactly
_EFFORT = {"hnsw": ("efSearch", 32, 512), "ivf": ("nprobe", 8, 1024), "ivfpq": ("nprobe", 8, 1024)}


def stored_type(faiss: dict[str, Any]) -> str:
    """The index type a manifest's ``faiss`` entry records ("IndexFlatIP", written before index
    types existed, means flat)."""
    kind = str(faiss.get("type", "flat"))
    return kind if kind in INDEX_TYPES else "flat"


def choose_type(total_rows: int) -> str:
    """The index type for an index of ``total_rows`` chunks when the user has not chosen one."""
    if total_rows <= FLAT_MAX_ROWS:
        return "flat"
    return "ivf" if total_rows <= IVFPQ_MIN_ROWS else "ivfpq"


def lists_for(rows: int) -> int:
    """IVF buckets for a part of ``rows`` vectors: about 4·√rows, a power of two, and never more
    than the training data supports."""
    wanted = 2 ** round(math.log2(max(16.0, 4 * math.sqrt(max(rows, 1)))))
    while wanted > 16 and rows < TRAINING_PER_LIST * wanted:
        wanted //= 2
    return wanted


def build_params(kind: str) -> dict[str, Any]:
    """Construction settings of an index type (the search effort is tuned afterwards)."""
    if kind == "hnsw":
        return {"M": 32, "efConstruction": 80, "efSearch": 32}
    if kind in ("ivf", "ivfpq"):
        return {"nprobe": 8} | ({"m": 48, "nbits": 8} if kind == "ivfpq" else {})
    return {}


def build_hnsw(vectors: np.ndarray, params: dict[str, Any]) -> Any:
    """An HNSW graph over one part's unit vectors."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index = faiss.IndexHNSWFlat(vectors.shape[1], int(params["M"]), faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = int(params["efConstruction"])
    index.add(vectors)
    return index


def training_rows(kind: str, total_rows: int, params: dict[str, Any]) -> int:
    """How many sample vectors an IVF training of an index of ``total_rows`` uses (0: too few
    to train one that can be trusted)."""
    lists = lists_for(total_rows)
    wanted = TRAINING_PER_LIST * lists
    if kind == "ivfpq":
        wanted = max(wanted, TRAINING_PER_LIST * (1 << int(params["nbits"])))
    return wanted if total_rows >= max(wanted, MIN_ANN_ROWS) else 0


def train_ivf(kind: str, sample: np.ndarray, lists: int, params: dict[str, Any]) -> Any:
    """An empty IVF (or IVF-PQ) index trained on ``sample``: the copy every part adds to."""
    import faiss

    dimension = sample.shape[1]
    quantiser = faiss.IndexFlatIP(dimension)
    index: Any
    if kind == "ivf":
        index = faiss.IndexIVFFlat(quantiser, dimension, lists, faiss.METRIC_INNER_PRODUCT)
    else:
        m = int(params["m"]) if dimension % int(params["m"]) == 0 else _divisor_near(dimension, 48)
        index = faiss.IndexIVFPQ(
            quantiser, dimension, lists, m, int(params["nbits"]), faiss.METRIC_INNER_PRODUCT
        )
    index.cp.seed = 1234  # the same sample gives the same buckets on every run
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def _divisor_near(dimension: int, wanted: int) -> int:
    return min((d for d in range(1, dimension + 1) if dimension % d == 0), key=lambda d: abs(d - wanted))


def search_params(kind: str, params: dict[str, Any], selector: Any) -> Any:
    """FAISS search parameters for one search: the tuned effort and an optional id selector."""
    import faiss

    out: Any
    if kind == "hnsw":
        out = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
        out.efSearch = int(params.get("efSearch", 32))
    elif kind in ("ivf", "ivfpq"):
        out = faiss.SearchParametersIVF()
        out.nprobe = int(params.get("nprobe", 8))
    else:
        out = faiss.SearchParameters()
    if selector is not None:
        out.sel = selector
    return out


# How far the recall check's queries lie from the data. Real queries lie farther from the chunks
# than mixtures of chunks do (SciFact queries' best cosine is about 0.56 at 100k and 1M chunks),
# and farther queries are harder for IVF: with little noise (best cosine 0.75) the check chose
# nprobe 8, where real queries reached recall@10 0.896 at 100k and 0.938 at 1M. At this noise
# (best cosine about 0.39) the check's recall lay below real queries' at every effort measured:
# hnsw and ivf at 100k, ivf at 1M (bench/warm.py; docs/performance.md).
QUERY_NOISE = 3.0


def sample_queries(pool: np.ndarray, count: int, seed: int = 0, noise: float = QUERY_NOISE) -> np.ndarray:
    """Query-like vectors: the normalised sum of two stored vectors from ``pool`` plus noise of
    norm about ``noise`` (a stored vector itself would be found trivially)."""
    rng = np.random.default_rng(seed)
    if len(pool) == 0 or count == 0:
        return np.zeros((0, pool.shape[1] if pool.ndim == 2 else 0), dtype=np.float32)
    a = pool[rng.integers(0, len(pool), count)]
    b = pool[rng.integers(0, len(pool), count)]
    offset = rng.standard_normal(a.shape).astype(np.float32) * (noise / math.sqrt(a.shape[1]))
    out = a + b + offset
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def recall_at(exact: list[list[tuple[int, int]]], found: list[list[tuple[int, int]]], k: int) -> float:
    """Mean share of each query's exact top ``k`` that the approximate search found."""
    if not exact:
        return 1.0
    shares = [
        len(set(e[:k]) & set(f[:k])) / max(1, min(k, len(e))) for e, f in zip(exact, found, strict=True)
    ]
    return float(np.mean(shares))


def effort_levels(kind: str, start: int) -> list[int]:
    """The search efforts the recall check tries, smallest first."""
    if kind not in _EFFORT:
        return [0]
    _, floor, ceiling = _EFFORT[kind]
    level, out = max(floor, start), []
    while level < ceiling:
        out.append(level)
        level *= 2
    return [*out, ceiling]


def prepare_parts(
    directory: Path,
    manifest: IndexManifest,
    parts: list[PartRef],
    kind: str,
    choice: str,
    previous: dict[str, Any] | None,
    fresh: set[str],
) -> tuple[list[PartRef], dict[str, Any]]:
    """Give every part the ANN file ``kind`` calls for (or none), then check recall.

    Parts whose ANN file is already of this kind (and, for IVF, of the index's training) keep
    it; the others get one built from their exact vectors, under a fresh name (files are never
    rewritten). ``fresh`` names the parts written by this build. Returns the parts and the
    manifest's ``faiss`` facts.
    """
    import faiss

    from indexer.store import all_vectors, ann_problem, file_facts, fsync_path, new_id, read_vectors

    params = build_params(kind)
    kept = previous if previous is not None and previous.get("type") == kind else None
    if kept is not None and isinstance(kept.get("params"), dict):
        params |= {k: v for k, v in kept["params"].items() if k in params}
    total = sum(p.rows for p in parts)
    training: dict[str, Any] | None = None
    template = None
    if kind in ("ivf", "ivfpq"):
        training, template = _ivf_training(directory, manifest, parts, kind, params, kept)
    out: list[PartRef] = []
    changed = bool(fresh)
    for part in parts:
        current = part.ann
        files = {k: v for k, v in part.files.items() if k != "ann"}
        if kind == "flat" or part.rows < MIN_ANN_ROWS or (kind != "hnsw" and template is None):
            changed |= current is not None
            out.append(replace(part, files=files))
            continue
        same_training = training is None or (current is not None and current.get("trained") == training["id"])
        usable = current is not None and current.get("type") == kind and same_training
        if usable and ann_problem(directory, part) is None:
            out.append(part)
            continue
        vectors = all_vectors(read_vectors(directory, manifest, part))
        if template is not None:
            index = faiss.clone_index(template)  # the index's shared buckets, empty
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        else:
            index = build_hnsw(vectors, params)
        (directory / ANN_DIR).mkdir(exist_ok=True)
        name = f"{ANN_DIR}/part-{new_id()}.faiss"
        faiss.write_index(index, str(directory / name))
        fsync_path(directory / name)
        files["ann"] = file_facts(directory / name) | {"name": name, "type": kind}
        if training is not None:
            files["ann"]["trained"] = training["id"]
        out.append(replace(part, files=files))
        changed = True
    if (directory / ANN_DIR).is_dir():
        fsync_path(directory / ANN_DIR)
    facts: dict[str, Any] = {
        "type": kind,
        "choice": choice,
        "metric": "inner_product",
        "ntotal": total,
        "ann_parts": sum(p.ann is not None for p in out),  # parts under MIN_ANN_ROWS stay exact
    }
    if training is not None and any(p.ann for p in out):
        facts["trained"] = training
    if kind == "flat" or not any(p.ann for p in out):
        return out, facts | {"params": {}, "recall_at_10": 1.0}
    if not changed and kept is not None and "recall_at_10" in kept:
        return out, facts | {k: kept[k] for k in ("params", "recall_at_10", "recall_check") if k in kept}
    settings, recall = check_recall(directory, manifest, out, kind, params)
    check = {"queries": CHECK_QUERIES, "k": 10, "target": TARGET_RECALL, "against": "exact search"}
    return out, facts | {"params": settings, "recall_at_10": round(recall, 4), "recall_check": check}


def _ivf_training(
    directory: Path,
    manifest: IndexManifest,
    parts: list[PartRef],
    kind: str,
    params: dict[str, Any],
    previous: dict[str, Any] | None,
) -> tuple[dict[str, Any] | None, Any]:
    """The index's IVF training (its facts, and an empty trained index to copy), kept from the
    previous version when it still fits, else trained on a sample across all ``parts``.
    (None, None) when the index is too small to train one."""
    import faiss

    from indexer.store import ann_problem, new_id, read_vectors

    total = sum(p.rows for p in parts)
    old = previous.get("trained") if previous is not None else None
    if isinstance(old, dict) and total <= RETRAIN_GROWTH * int(old.get("rows", 0)):
        for part in parts:  # any part built on that training holds a copy of it
            ann = part.ann
            if ann is None or ann.get("trained") != old.get("id") or ann_problem(directory, part) is not None:
                continue
            index = faiss.read_index(str(directory / str(ann["name"])))
            index.reset()  # its vectors go; its buckets (and PQ codebook) stay
            return dict(old), index
    wanted = training_rows(kind, total, params)
    if wanted == 0:
        return None, None
    flats = [read_vectors(directory, manifest, part, mmap=True) for part in parts]  # mapped, not read
    sample = sample_vectors(parts, flats, wanted, np.random.default_rng(1234))
    lists = lists_for(total)
    template = train_ivf(kind, sample, lists, params)
    return {"id": new_id(), "lists": lists, "rows": total, "sample": len(sample)}, template


def sample_vectors(
    parts: list[PartRef], flats: list[Any], count: int, rng: np.random.Generator
) -> np.ndarray:
    """About ``count`` stored vectors drawn across ``parts``, each giving its share by size."""
    total = sum(p.rows for p in parts)
    pool = []
    for part, flat in zip(parts, flats, strict=True):
        take = max(1, round(count * part.rows / max(total, 1)))
        rows = np.sort(rng.choice(part.rows, size=min(take, part.rows), replace=False))
        pool.append(np.asarray(flat.reconstruct_batch(rows.astype(np.int64)), dtype=np.float32))
    return np.concatenate(pool)


def check_recall(
    directory: Path,
    manifest: IndexManifest,
    parts: list[PartRef],
    kind: str,
    params: dict[str, Any],
    k: int = 10,
) -> tuple[dict[str, Any], float]:
    """Recall@k of the whole index against exact search on sample queries, at rising search
    efforts; returns the smallest effort that reaches the target (or the largest tried)."""
    import faiss

    from indexer.store import read_vectors

    flats = [read_vectors(directory, manifest, part, mmap=True) for part in parts]  # mapped, not read
    pool = sample_vectors(parts, flats, 2 * CHECK_QUERIES, np.random.default_rng(7))
    queries = sample_queries(pool, CHECK_QUERIES)
    name = _EFFORT[kind][0]
    levels = effort_levels(kind, int(params.get(name, _EFFORT[kind][1])))
    exact: list[list[tuple[float, int, int]]] = [[] for _ in queries]
    found: dict[int, list[list[tuple[float, int, int]]]] = {lv: [[] for _ in queries] for lv in levels}
    for number, (part, flat) in enumerate(zip(parts, flats, strict=True)):
        scores, ids = flat.search(queries, min(k, part.rows))
        for q in range(len(queries)):
            exact[q] += [(float(s), number, int(i)) for s, i in zip(scores[q], ids[q], strict=True) if i >= 0]
        ann = faiss.read_index(str(directory / part.ann["name"])) if part.ann else None
        for level in levels:
            if ann is None:
                got_scores, got_ids = scores, ids
            else:
                wanted = k * RERANK if kind == "ivfpq" else k
                got_scores, got_ids = ann.search(
                    queries, min(wanted, part.rows), params=search_params(kind, {name: level}, None)
                )
                if kind == "ivfpq":
                    got_scores, got_ids = rescore(flat, queries, got_ids, k)
            for q in range(len(queries)):
                found[level][q] += [
                    (float(s), number, int(i))
                    for s, i in zip(got_scores[q], got_ids[q], strict=True)
                    if i >= 0
                ]

    def top(hits: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
        return [(p, i) for _, p, i in sorted(hits, key=lambda h: (-h[0], h[1], h[2]))[:k]]

    truth = [top(h) for h in exact]
    recall = 0.0
    for level in levels:
        recall = recall_at(truth, [top(h) for h in found[level]], k)
        if recall >= TARGET_RECALL:
            return params | {name: level}, recall
    return params | {name: levels[-1]}, recall


def rescore(flat: Any, queries: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact cosines of each query's candidate ids (from the part's flat vectors); best ``k`` kept."""
    ids = np.asarray(ids, dtype=np.int64)
    valid = ids >= 0
    safe = np.where(valid, ids, 0)
    stored = np.asarray(flat.reconstruct_batch(safe.ravel()), dtype=np.float32)
    stored = stored.reshape(ids.shape[0], ids.shape[1], -1)
    exact = np.einsum("qcd,qd->qc", stored, queries)
    exact[~valid] = -np.inf
    order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    scores = np.take_along_axis(exact, order, axis=1).astype(np.float32)
    out = np.where(np.isfinite(scores), np.take_along_axis(ids, order, axis=1), -1)
    return scores, out
