"""Dense search with the parts of an index held by Ray actors: fan a query out, merge the hits.

``Index.open(..., engine="ray")`` (and ``semindex search --engine ray``) places the index's
parts in ``shards`` actors, each loading its parts' vectors (and ANN files) into its own
memory, on whichever node Ray puts it. A dense search sends the query vectors to every actor;
each answers with its parts' best hits (the same code as a local search, ``dense_hits``), and
the driver keeps the ``k`` best of the union, ties broken by part and row exactly as the
local merge does: the answers are those of one index holding every vector.

Keyword postings, chunk rows and snippets stay with the driver (they are read for the hits
only). Ray is an optional extra: ``pip install "semindex[ray]"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from indexer.distributed import connect
from indexer.errors import IndexCorruptError
from indexer.manifest import IndexManifest
from search.shards import Hit, OpenPart, dense_hits


class ShardHolder:
    """One actor's parts of an index version, in memory; answers dense searches over them."""

    def __init__(self, directory: str, manifest: IndexManifest, numbers: list[int]) -> None:
        from indexer.store import check_part_files, read_vectors
        from search.shards import _read_ann, link_shared

        self.numbers = numbers
        self.parts: list[OpenPart] = []
        for number in numbers:
            ref = manifest.part_refs[number]
            check_part_files(Path(directory), ref)
            vectors = read_vectors(Path(directory), manifest, ref, mmap=False)
            ann, kind = None, "flat"
            if ref.ann is not None:
                ann, kind = _read_ann(Path(directory), ref, manifest.dimension), str(ref.ann.get("type"))
            params = dict(manifest.faiss.get("params") or {})
            self.parts.append(OpenPart(ref, vectors, rows=None, ann=ann, ann_type=kind, ann_params=params))  # type: ignore[arg-type]
        link_shared(self.parts)  # this actor's parts of one IVF training are searched together

    def search(self, vectors: np.ndarray, k: int, masks: list[np.ndarray | None] | None) -> list[list[Hit]]:
        found = dense_hits(self.parts, vectors, k, masks)
        return [[(score, self.numbers[part], row) for score, part, row in hits] for hits in found]

    def ready(self) -> int:
        return sum(int(p.vectors.ntotal) for p in self.parts)


class RayShards:
    """The actors holding one index version's parts, and the fan-out search over them."""

    def __init__(self, directory: Path, manifest: IndexManifest, shards: int | None = None,
                 address: str | None = None) -> None:  # fmt: skip
        ray = connect(address)
        parts = len(manifest.part_refs)
        count = max(1, min(parts, shards or int(ray.available_resources().get("CPU", os.cpu_count() or 1))))
        groups = [list(range(parts))[n::count] for n in range(count)]  # parts dealt round-robin
        holder = ray.remote(num_cpus=0)(ShardHolder)  # memory, not cores: searches are short
        self._ray = ray
        self.groups = [g for g in groups if g]
        self.actors = [holder.remote(str(directory), manifest, group) for group in self.groups]
        try:
            ray.get([actor.ready.remote() for actor in self.actors])  # loaded, or the error now
        except Exception as exc:  # Ray keeps only the text of an actor's error
            self.close()
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise IndexCorruptError(f"the Ray actors could not load the index's parts: {first}") from None

    def dense_hits(
        self, vectors: np.ndarray, k: int, masks: Sequence[np.ndarray | None] | None
    ) -> list[list[Hit]]:
        """The ``k`` best (cosine, part number, row) per query over all actors, best first."""
        vectors_ref = self._ray.put(np.ascontiguousarray(vectors, dtype=np.float32))
        calls = []
        for actor, group in zip(self.actors, self.groups, strict=True):
            wanted = [masks[n] for n in group] if masks is not None else None
            calls.append(actor.search.remote(vectors_ref, k, wanted))
        merged: list[list[Hit]] = [[] for _ in range(len(vectors))]
        for answer in self._ray.get(calls):
            for query, hits in enumerate(answer):
                merged[query].extend(hits)
        return [sorted(hits, key=lambda c: (-c[0], c[1], c[2]))[:k] for hits in merged]

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []
