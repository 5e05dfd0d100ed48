"""Combining rankings: pure functions over (score, part, row) hits.

Reciprocal rank fusion scores a hit by ``sum(weight / (k + rank))`` over the rankings it appears
in: it needs no score calibration between cosine and BM25, and on SciFact's training queries it
did as well as weighted score sums (see bench/scifact.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Hit = tuple[float, int, int]  # (score, part number, row)

RRF_K = 60.0  # chosen on SciFact's training queries (bench/scifact.py --tune)
DENSE_WEIGHT = 1.0
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
