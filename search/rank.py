"""Combining rankings: pure functions over (score, part, row) hits.

Reciprocal rank fusion scores a hit by ``sum(weight / (k + rank))`` over the rankings it appears
in: it needs no calibration between cosine and BM25 scores. Its settings were chosen on
SciFact's training queries (``python bench/scifact.py --tune``): k = 5, dense weight 0.75 and
keyword weight 1, each ranking read 100 deep, scored best of 91 settings tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Hit = tuple[float, int, int]  # (score, part number, row)

RRF_K = 5.0  # chosen on SciFact's training queries (bench/scifact.py --tune)
DENSE_WEIGHT = 0.75
KEYWORD_WEIGHT = 1.0


@dataclass(frozen=True)
class Fused:
    """A hit of the fused ranking, with what each ranking said of it."""

    score: float
    part: int
    row: int
    dense_rank: int | None
    keyword_rank: int | None


def reciprocal_rank_fusion(
    dense: Sequence[Hit],
    keyword: Sequence[Hit],
    k: float = RRF_K,
    dense_weight: float = DENSE_WEIGHT,
    keyword_weight: float = KEYWORD_WEIGHT,
) -> list[Fused]:
    """Fuse two best-first rankings; ties go to the better dense rank, then part and row."""
    dense_ranks = {(p, r): rank for rank, (_, p, r) in enumerate(dense, start=1)}
    keyword_ranks = {(p, r): rank for rank, (_, p, r) in enumerate(keyword, start=1)}
    fused = []
    for key in dict.fromkeys([*dense_ranks, *keyword_ranks]):
        d, w = dense_ranks.get(key), keyword_ranks.get(key)
        score = (dense_weight / (k + d) if d else 0.0) + (keyword_weight / (k + w) if w else 0.0)
        fused.append(Fused(score, key[0], key[1], d, w))
    fused.sort(key=lambda f: (-f.score, f.dense_rank or 1 << 30, f.part, f.row))
    return fused


@dataclass
class Selected:
    """A hit that made the final list, and the identical chunks (other places) folded into it."""

    key: tuple[int, int]
    facts: dict[str, Any]
    duplicates: list[tuple[int, int]] = field(default_factory=list)


def select(
    ranked: Sequence[tuple[tuple[int, int], dict[str, Any]]],
    k: int,
    per_doc: int | None,
    identity: Callable[[tuple[int, int]], tuple[str, str]],
) -> list[Selected]:
    """The final hits from best-first candidates: identical chunks once, grouped by document.

    ``identity`` gives a candidate's (document path, content hash). A chunk whose content hash
    was already taken is folded into the first one as a duplicate (and one whose twin was passed
    over, its document being full, is passed over too). With ``per_doc`` N, each
    document keeps its N best chunks, documents come in the order of their best chunk, and
    ``k`` documents are returned; with None, the first ``k`` chunks.
    """
    taken: dict[str, Selected | None] = {}  # None: seen in a document already full, not shown
    documents: dict[str, list[Selected]] = {}
    plain: list[Selected] = []
    for key, facts in ranked:
        path, digest = identity(key)
        if digest in taken:
            holder = taken[digest]
            if holder is not None:
                holder.duplicates.append(key)
            continue
        if per_doc is None:
            if len(plain) < k:
                chosen = Selected(key, facts)
                taken[digest] = chosen
                plain.append(chosen)
            continue
        group = documents.get(path)
        if group is None:
            if len(documents) >= k:
                continue
            group = documents[path] = []
        if len(group) < per_doc:
            chosen = Selected(key, facts)
            taken[digest] = chosen
            group.append(chosen)
        else:
            taken[digest] = None  # so a copy of this chunk elsewhere does not show in its place
    if per_doc is None:
        return plain
    return [chosen for group in documents.values() for chosen in group]
