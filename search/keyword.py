"""BM25 over the parts of an index, with collection-wide statistics.

Each part holds its own postings; the document frequency of a term and the mean row length are
summed over all parts at query time, so a multi-part index scores exactly as one would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.keywords import Analyzer, KeywordPart

FREQUENCY_CACHE = 100_000  # terms whose row counts a searcher keeps (a few MB)
K1 = 0.9  # BM25's usual settings for passages (as in Anserini)
B = 0.4


@dataclass(frozen=True)
class KeywordScores:
    """One query's BM25 score for every row of every part (0 where no term matches)."""

    per_part: list[np.ndarray]

    def top(self, k: int, allowed: Sequence[np.ndarray | None] | None = None) -> list[tuple[float, int, int]]:
        """The ``k`` best (score, part number, row) with a score above 0, best first."""
        found: list[tuple[float, int, int]] = []
        for number, scores in enumerate(self.per_part):
            mask = allowed[number] if allowed is not None else None
            if mask is not None:
                scores = np.where(mask, scores, 0.0)
            hits = np.flatnonzero(scores > 0)
            if len(hits) > k:
                hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
            found.extend((float(scores[row]), number, int(row)) for row in hits)
        found.sort(key=lambda hit: (-hit[0], hit[1], hit[2]))
        return found[:k]

    def score(self, part: int, row: int) -> float:
        """The BM25 score of one row."""
        return float(self.per_part[part][row])


class KeywordSearcher:
    """Scores queries against the keyword postings of every part."""

    def __init__(self, parts: Sequence[KeywordPart], terms: int, k1: float = K1, b: float = B) -> None:
        self.parts = list(parts)
        self.rows = sum(p.num_rows for p in self.parts)
        self.mean_length = terms / self.rows if self.rows else 1.0
        self.k1, self.b = k1, b
        self.analyzer = Analyzer()
        self._frequencies: dict[str, int] = {}  # term -> rows holding it, as terms are asked for

    def query_terms(self, query: str) -> list[str]:
        """The query's distinct terms, in order."""
        return list(dict.fromkeys(self.analyzer.terms(query)))

    def idf(self, term: str) -> float:
        """How rare ``term`` is across the index (BM25's inverse document frequency)."""
        return math.log(1.0 + (self.rows - self.frequency(term) + 0.5) / (self.frequency(term) + 0.5))

    def frequency(self, term: str) -> int:
        """How many rows hold ``term``, over all parts (kept once asked: the parts never change,
        and summing 16 parts' postings cost a 1M-chunk query about 0.4 ms for its snippets)."""
        known = self._frequencies.get(term)
        if known is None:
            known = sum(p.frequency(term) for p in self.parts)
            if len(self._frequencies) >= FREQUENCY_CACHE:
                self._frequencies.clear()
            self._frequencies[term] = known
        return known

    def scores(self, query: str) -> KeywordScores:
        """BM25 of ``query`` against every row."""
        per_part = [np.zeros(p.num_rows, dtype=np.float32) for p in self.parts]
        mean = self.mean_length or 1.0
        for term in self.query_terms(query):
            postings = [p.postings(term) for p in self.parts]
            frequency = sum(len(rows) for rows, _ in postings)
            if frequency == 0:
                continue
            idf = math.log(1.0 + (self.rows - frequency + 0.5) / (frequency + 0.5))
            for part, scores, (rows, freqs) in zip(self.parts, per_part, postings, strict=True):
                if len(rows) == 0:
                    continue
                norm = self.k1 * (1.0 - self.b + self.b * part.lengths[rows] / mean)
                scores[rows] += idf * freqs * (self.k1 + 1.0) / (freqs + norm)
        return KeywordScores(per_part)
