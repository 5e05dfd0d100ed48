"""The keyword side of an index: an analyzer and, per part, a term → postings table for BM25.

Each part gets ``keywords/part-<id>.npz`` beside its chunks and vectors: the part's sorted
vocabulary, and for each term the rows it occurs in with its frequency, plus each row's length
in terms. The collection-wide statistics BM25 needs (how many rows hold a term, the mean row
length) are summed over the parts at query time, so parts stay independent and an update never
rewrites a part it did not touch.
"""

from __future__ import annotations

import re
import threading
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.errors import REBUILD_HINT, IndexCorruptError

ANALYZER = "unicode-words-lower-stop-snowball-english-v1"

# Lucene's classic English stop set: short, and safe for code and names.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_WORD = re.compile(r"\w+")
_MAX_TERM = 40  # longer runs (hashes, base64) are not words anyone types
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


class Analyzer:
    """Text → terms: Unicode words, lowercased and accent-folded, stop words dropped, stemmed.

    Runs of CJK characters, which have no spaces between words, become character bigrams.
    Safe from many threads (a stemmer keeps its word in progress, so each thread has its own).
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._cache: dict[str, tuple[str, ...]] = {}

    @property
    def _stemmer(self) -> Any:
        stemmer = getattr(self._local, "stemmer", None)
        if stemmer is None:
            from snowballstemmer.english_stemmer import EnglishStemmer  # not all 30 languages' (40 ms)

            stemmer = self._local.stemmer = EnglishStemmer()
        return stemmer

    def word_terms(self, word: str) -> tuple[str, ...]:
        """The terms of one lowercased word (usually one; none for a stop word), cached."""
        found = self._cache.get(word)
        if found is None:
            if len(self._cache) > 500_000:
                self._cache.clear()
            found = tuple(self._analyze(word))
            self._cache[word] = found
        return found

    def _analyze(self, word: str) -> list[str]:
        out = []
        for piece in _WORD.findall(fold(word)):  # folding can split a word ("ﬁ" → "fi")
            if piece in STOPWORDS or len(piece) > _MAX_TERM:
                continue
            if _CJK.search(piece):
                out.extend(_bigrams(piece))
            else:
                out.append(self._stemmer.stemWord(piece) if piece.isascii() else piece)
        return out

    def terms(self, text: str) -> list[str]:
        """The terms of ``text``, in order."""
        out: list[str] = []
        for word in _WORD.findall(text.lower()):
            out.extend(self.word_terms(word))
        return out


def fold(text: str) -> str:
    """Lowercase and strip accents (café → cafe), so either spelling matches."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _bigrams(word: str) -> list[str]:
    if len(word) == 1:
        return [word]
    return [word[i : i + 2] for i in range(len(word) - 1)]


@dataclass
class KeywordPart:
    """One part's postings: for term ``vocab[j]``, rows ``rows[starts[j]:starts[j+1]]`` with
    frequencies ``freqs[...]``; ``lengths[r]`` is row r's number of terms."""

    vocab: np.ndarray  # sorted str array
    starts: np.ndarray  # int64, len(vocab) + 1
    rows: np.ndarray  # int32
    freqs: np.ndarray  # float32
    lengths: np.ndarray  # float32, one per row
    # The file the arrays are mapped from, while their rows are checked only as they are used.
    _unchecked: Path | None = field(default=None, repr=False, compare=False)

    @property
    def num_rows(self) -> int:
        """How many chunk rows the part has."""
        return len(self.lengths)

    def term_id(self, term: str) -> int | None:
        """The term's position in the (sorted) vocabulary, or None."""
        if not len(self.vocab):
            return None
        key: Any = term
        if self.vocab.dtype.kind == "U":
            if len(term) > self.vocab.dtype.itemsize // 4:
                return None  # longer than any stored term (a longer key would copy the vocabulary)
            key = np.array(term, dtype=self.vocab.dtype)
        position = int(np.searchsorted(self.vocab, key))
        if position < len(self.vocab) and self.vocab[position] == term:
            return position
        return None

    def frequency(self, term: str) -> int:
        """How many rows hold ``term`` (its postings are not read)."""
        j = self.term_id(term)
        return 0 if j is None else int(self.starts[j + 1] - self.starts[j])

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows holding ``term`` and how often."""
        j = self.term_id(term)
        if j is None:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        start, end = int(self.starts[j]), int(self.starts[j + 1])
        rows = self.rows[start:end]
        if self._unchecked is not None:  # mapped from the file: checked as used
            try:
                self.check_rows(rows)
            except ValueError as exc:
                raise IndexCorruptError(
                    f"{self._unchecked} holds keyword rows out of range; {REBUILD_HINT}"
                ) from exc
        return rows, self.freqs[start:end]

    def kept_rows(self, keep: np.ndarray) -> TermBatch:
        """The postings of the rows where ``keep`` is true, renumbered in order (to copy kept rows)."""
        position = np.cumsum(keep) - 1
        term_of = np.repeat(np.arange(len(self.vocab), dtype=np.int64), np.diff(self.starts))
        chosen = keep[self.rows]
        return TermBatch(
            vocab=[str(t) for t in self.vocab],
            rows=position[self.rows[chosen]].astype(np.int64),
            terms=term_of[chosen],
            freqs=self.freqs[chosen],
            lengths=self.lengths[keep],
        )

    @classmethod
    def from_batches(cls, batches: Sequence[TermBatch]) -> KeywordPart:
        """One part's postings from the term batches of its rows, in row order."""
        builder = PostingsBuilder()
        for batch in batches:
            builder.add(batch)
        return builder.build()

    def save(self, path: Path) -> None:
        """Write the arrays as an uncompressed ``.npz`` that ``np.load`` reads (no pickles), with
        each array's data 64-byte aligned in the file, so that it can be mapped and used in place."""
        import io
        import struct

        with open(path, "wb") as handle, zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
            for name in _ARRAYS:
                buffer = io.BytesIO()
                np.lib.format.write_array(
                    buffer, np.ascontiguousarray(getattr(self, name)), allow_pickle=False
                )
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                # The member's data starts after its 30-byte local header, its name and this extra
                # field (zipalign's id, 0xD935): padded so it starts on 64 bytes, as .npy's own
                # header is padded to 64 bytes in turn.
                start = handle.tell() + 30 + len(info.filename) + 4
                padding = -start % 64
                info.extra = struct.pack("<HH", 0xD935, padding) + bytes(padding)
                archive.writestr(info, buffer.getbuffer())

    @classmethod
    def load(cls, path: Path, mmap: bool = False) -> KeywordPart:
        """Read a part's keyword file (raises OSError or ValueError if it is not one).

        With ``mmap`` the arrays are mapped from the file, not read: a query touches only the
        pages of its terms' postings, so opening a 1M-chunk index reads none of its 500 MB of
        postings (its rows are then checked term by term, as they are used).
        """
        mapped = _mapped_npz(path, _ARRAYS) if mmap else None
        if mapped is None:
            try:
                with np.load(path, allow_pickle=False) as data:
                    mapped = {name: data[name] for name in _ARRAYS}
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError) as exc:
                raise ValueError(f"not a keyword file ({exc})") from exc  # a damaged compressed member
            whole = True
        else:
            whole = False
        if any(array.ndim != 1 for array in mapped.values()):
            raise ValueError("keyword arrays of the wrong shape")
        part = cls(mapped["vocab"], mapped["starts"], mapped["rows"], mapped["freqs"], mapped["lengths"])
        if len(part.starts) != len(part.vocab) + 1 or len(part.rows) != len(part.freqs):
            raise ValueError("inconsistent keyword arrays")
        kinds = (part.vocab.dtype.kind, part.starts.dtype.kind, part.rows.dtype.kind)
        if kinds[0] != "U" or kinds[1] not in "iu" or kinds[2] not in "iu":
            raise ValueError("keyword arrays of the wrong types")
        if part.freqs.dtype.kind not in "iuf" or part.lengths.dtype.kind not in "iuf":
            raise ValueError("keyword arrays of the wrong types")
        if len(part.starts) and (int(part.starts[0]) != 0 or int(part.starts[-1]) != len(part.rows)):
            raise ValueError("inconsistent keyword arrays")
        if len(part.starts) > 1 and bool((part.starts[1:] < part.starts[:-1]).any()):  # unsigned too
            raise ValueError("inconsistent keyword arrays")
        if whole:
            part.check_rows(part.rows)
        else:
            part._unchecked = path
        return part

    @classmethod
    def open(cls, path: Path, mmap: bool = False) -> KeywordPart:
        """``load``, with a file that is not a keyword file reported as a damaged index (one
        line, naming the file and the fix)."""
        try:
            return cls.load(path, mmap)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"{path} is not a readable keyword file ({exc}); {REBUILD_HINT}") from exc

    def check_rows(self, rows: np.ndarray) -> None:
        """Raise ValueError if any of ``rows`` is not a row of this part."""
        if len(rows) and (int(rows.max()) >= self.num_rows or int(rows.min()) < 0):
            raise ValueError("keyword rows out of range")


_ARRAYS = ("vocab", "starts", "rows", "freqs", "lengths")


def _mapped_npz(path: Path, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """The arrays of an uncompressed ``.npz`` (what ``np.savez`` writes) mapped from the file,
    or None if it is not one whose arrays can be mapped (the caller reads it whole)."""
    import struct

    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
    except zipfile.BadZipFile as exc:
        raise ValueError("not a keyword file") from exc
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as handle:
        for name in names:
            info = members.get(f"{name}.npy")
            if info is None or info.compress_type != zipfile.ZIP_STORED:
                return None
            handle.seek(info.header_offset)
            local = handle.read(30)
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError("not a keyword file")
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            handle.seek(info.header_offset + 30 + name_length + extra_length)
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            if dtype.hasobject or fortran or len(shape) != 1:
                raise ValueError("not a keyword file")
            if (
                handle.tell() + shape[0] * dtype.itemsize
                > info.header_offset + 30 + name_length + extra_length + info.file_size
            ):
                raise ValueError("truncated keyword file")
            if shape[0] == 0:
                out[name] = np.zeros(0, dtype=dtype)
                continue
            array = np.memmap(handle, dtype=dtype, mode="r", offset=handle.tell(), shape=shape)
            # Files written by np.savez (before their arrays were aligned) are mapped unaligned,
            # and NumPy copies an unaligned array for every search of it (0.75 ms for a 9 MB
            # vocabulary): the arrays looked up on every query are then copied into memory
            # once. Rows and frequencies stay mapped: a query reads only its terms' slices.
            out[name] = array if name in _MAPPED or array.flags.aligned else np.array(array)
    return out


_MAPPED = ("rows", "freqs")  # the bulk of a keyword file, read a term's slice at a time


@dataclass
class TermBatch:
    """The term counts of a run of rows: row ``rows[i]`` holds ``vocab[terms[i]]`` ``freqs[i]`` times."""

    vocab: list[str]
    rows: np.ndarray  # int64, relative to the batch's first row
    terms: np.ndarray  # int64 into vocab
    freqs: np.ndarray
    lengths: np.ndarray  # one per row of the batch

    @classmethod
    def from_texts(cls, analyzer: Analyzer, texts: Iterable[str]) -> TermBatch:
        """Analyze each text (one row each)."""
        index: dict[str, int] = {}
        rows, terms, freqs, lengths = [], [], [], []
        for row, text in enumerate(texts):
            counts = Counter(analyzer.terms(text))
            for term, freq in counts.items():
                rows.append(row)
                terms.append(index.setdefault(term, len(index)))
                freqs.append(freq)
            lengths.append(sum(counts.values()))
        return cls(
            list(index),
            np.array(rows, dtype=np.int64),
            np.array(terms, dtype=np.int64),
            np.array(freqs, dtype=np.float32),
            np.array(lengths, dtype=np.float32),
        )

    def slice(self, start: int, stop: int) -> TermBatch:
        """Rows ``start`` to ``stop`` (exclusive), renumbered from 0."""
        chosen = (self.rows >= start) & (self.rows < stop)
        return TermBatch(
            self.vocab,
            self.rows[chosen] - start,
            self.terms[chosen],
            self.freqs[chosen],
            self.lengths[start:stop],
        )


def keyword_text(section: str | None, text: str) -> str:
    """What the keyword index reads of a chunk: the same text the model read."""
    return f"{section}\n\n{text}" if section else text


class PostingsBuilder:
    """Gathers a part's postings batch by batch, compactly (int32 ids into one part vocabulary)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.rows: list[np.ndarray] = []
        self.terms: list[np.ndarray] = []
        self.freqs: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        self.count = 0

    def add(self, batch: TermBatch) -> None:
        """Append the next rows' postings."""
        if len(batch.terms):
            used, inverse = np.unique(batch.terms, return_inverse=True)
            ids = np.array(
                [self.index.setdefault(batch.vocab[u], len(self.index)) for u in used], dtype=np.int32
            )
            self.terms.append(ids[inverse.ravel()])
            self.rows.append((batch.rows + self.count).astype(np.int32))
            self.freqs.append(batch.freqs.astype(np.float32))
        self.lengths.append(batch.lengths.astype(np.float32))
        self.count += len(batch.lengths)

    def build(self) -> KeywordPart:
        """The part's postings, terms sorted, each term's rows in order."""
        vocab = sorted(self.index)
        rank = np.zeros(len(self.index), dtype=np.int32)
        rank[[self.index[t] for t in vocab]] = np.arange(len(vocab), dtype=np.int32)
        rows = np.concatenate(self.rows) if self.rows else np.zeros(0, dtype=np.int32)
        terms = rank[np.concatenate(self.terms)] if self.terms else np.zeros(0, dtype=np.int32)
        freqs = np.concatenate(self.freqs) if self.freqs else np.zeros(0, dtype=np.float32)
        self.rows, self.terms, self.freqs = [], [], []
        order = np.lexsort((rows, terms))
        starts = np.zeros(len(vocab) + 1, dtype=np.int64)
        starts[1:] = np.cumsum(np.bincount(terms, minlength=len(vocab)))
        return KeywordPart(
            vocab=np.array(vocab, dtype=str) if vocab else np.zeros(0, dtype="<U1"),
            starts=starts,
            rows=rows[order],
            freqs=freqs[order],
            lengths=np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.float32),
        )
