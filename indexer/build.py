"""The build pipeline: walk, extract, chunk, embed, store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from indexer.chunking import chunk_document
from indexer.config import INDEX_DIRNAME, BuildConfig, ChunkingConfig, ResolvedChunking
from indexer.embedding import SentenceTransformerEmbedder, load_embedder
from indexer.errors import (
    IndexExistsError,
    IndexWriteError,
    InputError,
    NothingToIndexError,
    StrictModeError,
)
from indexer.extract import extract_documents
from indexer.extract.records import RecordFields
from indexer.manifest import CHUNKS_FILE, IndexManifest
from indexer.models import resolve_model
from indexer.paths import resolve_path
from indexer.pipeline import BuildProgress, Pipeline, ProgressCallback
from indexer.records import BuildReport, Chunk, SkippedFile, SourceFile
from indexer.reuse import PreviousIndex
from indexer.store import IndexLock, IndexWriter, check_target, clean_leftovers
from indexer.walk import PathFilter, walk_folder


def default_index_dir(folder: Path) -> Path:
    """Where the index of ``folder`` lives unless told otherwise."""
    return folder / INDEX_DIRNAME


def _check_folder(folder: Path) -> Path:
    if not folder.expanduser().exists():
        raise InputError(f"folder {folder} does not exist")
    resolved = resolve_path(folder)
    if not resolved.is_dir():
        raise InputError(f"{folder} is not a folder; pass the folder that holds your documents")
    return resolved


def _check_target(root: Path, target: Path) -> None:
    if target == root or root.is_relative_to(target):
        raise InputError(
            f"the index cannot be written to {target}: it would replace the documents folder; "
            "choose another --index"
        )
    check_target(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexWriteError(f"cannot create {target.parent}: {exc.strerror or exc}") from exc


def _existing_settings(index_dir: Path) -> IndexManifest | None:
    try:
        return IndexManifest.load(index_dir)
    except Exception:  # no index, or a damaged one that the rebuild will replace
        return None


def _check_same_model(existing: IndexManifest, model_name: str, index_dir: Path) -> None:
    if existing.model_name != model_name:
        raise IndexExistsError(
            f"{index_dir} was built with model {existing.model_name}, not {model_name}; "
            "add --rebuild to replace it, or choose another --index"
        )


def _check_same_chunking(existing: IndexManifest, chunking: ResolvedChunking, index_dir: Path) -> None:
    if existing.chunking != chunking.to_dict():
        old, new = existing.chunking, chunking.to_dict()
        raise IndexExistsError(
            f"{index_dir} was built with chunks of {old.get('max_tokens')} tokens overlapping by "
            f"{old.get('overlap_tokens')}, not {new['max_tokens']} and {new['overlap_tokens']}; "
            "add --rebuild to replace it"
        )


def build_index(
    folder: str | Path,
    index_dir: str | Path | None = None,
    *,
    model: str | None = None,
    embedder: SentenceTransformerEmbedder | None = None,
    chunking: ChunkingConfig | None = None,
    config: BuildConfig | None = None,
    rebuild: bool = False,
    progress: ProgressCallback | None = None,
) -> BuildReport:
    """Index every readable text file under ``folder``.

    Args:
        folder: The folder of documents.
        index_dir: Where to write the index; ``folder/.semindex`` by default.
        model: Model name or path; by default the existing index's model, else the default model.
        embedder: An already loaded model (overrides ``model``).
        chunking: Chunk size and overlap; by default the existing index's, else the model's limit.
        config: Other build settings.
        rebuild: Replace an existing index even if it was built with other settings.
        progress: Called with a BuildProgress after each embedded batch.

    Returns:
        A BuildReport with counts, skipped files and timings.
    """
    started = time.perf_counter()
    root = _check_folder(Path(folder))
    target = resolve_path(index_dir) if index_dir else default_index_dir(root)
    _check_target(root, target)
    with IndexLock(target):
        clean_leftovers(target)
        return _build_locked(
            root, target, model, embedder, chunking, config or BuildConfig(), rebuild, progress, started
        )


def _build_locked(
    root: Path,
    target: Path,
    model: str | None,
    embedder: SentenceTransformerEmbedder | None,
    chunking: ChunkingConfig | None,
    config: BuildConfig,
    rebuild: bool,
    progress: ProgressCallback | None,
    started: float,
) -> BuildReport:
    existing = None if rebuild else _existing_settings(target)
    if existing is not None:
        if model is None and embedder is None:
            model = existing.model_name
        wanted = embedder.name if embedder is not None else resolve_model(model).name
        _check_same_model(existing, wanted, target)
        if chunking is None:
            chunking = ChunkingConfig(
                existing.chunking.get("max_tokens"), existing.chunking.get("overlap_tokens", 32)
            )
    path_filter = PathFilter(root, config.include, config.exclude)  # bad patterns fail before the model loads
    if progress is not None:
        progress(BuildProgress("loading model", 0, 0, 0, 0, 0, time.perf_counter() - started))
    loading = time.perf_counter()
    embedder = embedder or load_embedder(model)
    model_seconds = time.perf_counter() - loading
    settings = (chunking or ChunkingConfig()).resolve(embedder.token_limit)
    if existing is not None:
        _check_same_chunking(existing, settings, target)

    previous = PreviousIndex.load(target, existing) if existing is not None else None
    report = BuildReport(index_dir=target, model_seconds=model_seconds)
    if progress is not None:
        progress(BuildProgress("scanning", 0, 0, 0, 0, 0, time.perf_counter() - started))
    sources: list[SourceFile] = []
    for found in walk_folder(root, exclude=(target,), path_filter=path_filter):
        if isinstance(found, SkippedFile):
            _record_skip(report, found, config.strict)
        else:
            sources.append(found)

    try:
        writer = IndexWriter(target, embedder.dimension, config.row_group_size)
    except OSError as exc:
        raise IndexWriteError(f"cannot write the index at {target}: {exc.strerror or exc}") from exc
    try:
        pipeline = Pipeline(sources, embedder, config, writer, report, progress, previous)
        for chunks, finished in _document_chunks(sources, embedder, settings, config, report, previous):
            pipeline.add(chunks, finished)
        pipeline.flush()
        if previous is not None:
            report.files_removed = len(previous.paths - {s.path for s in sources})
        if writer.count == 0:
            raise NothingToIndexError(_nothing_message(root, report))
        report.seconds = time.perf_counter() - started
        manifest = IndexManifest(
            model=embedder.describe(),
            chunking=settings.to_dict(),
            faiss={},
            counts={"documents": report.files_indexed, "chunks": writer.count},
            files={},
            root=str(root),
            build={
                "seconds": round(report.seconds, 3),
                "tokens": report.tokens,
                "skipped": len(report.skipped),
            },
        )
        writer.commit(manifest)
    except OSError as exc:
        writer.abort()
        raise IndexWriteError(
            f"cannot write the index at {target}: {exc.strerror or exc}; the previous index is unchanged"
        ) from exc
    except BaseException:
        writer.abort()
        raise
    return report


def _record_skip(report: BuildReport, skipped: SkippedFile, strict: bool) -> None:
    if strict and skipped.failed:
        raise StrictModeError(f"{skipped.path}: {skipped.reason} (--strict stops at the first failure)")
    report.skipped.append(skipped)


def _nothing_message(root: Path, report: BuildReport) -> str:
    if not report.skipped:
        return f"no files found in {root}; point semindex at a folder of text documents"
    reasons = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:3])
    more = f" and {len(report.skipped) - 3} more" if len(report.skipped) > 3 else ""
    return f"no indexable text in {root} (skipped {reasons}{more})"


def _document_chunks(
    sources: list[SourceFile],
    embedder: SentenceTransformerEmbedder,
    settings: ResolvedChunking,
    config: BuildConfig,
    report: BuildReport,
    previous: PreviousIndex | None = None,
) -> Iterator[tuple[list[Chunk], SourceFile | None]]:
    """Chunks document by document; a file's last item carries the file, to mark it done.

    A file that is skipped or fails is recorded in the report and yields no chunks, so one bad
    file never stops the build. Record files yield once per record, so memory stays flat.
    """
    fields = RecordFields(config.id_field, config.text_fields)
    for source in sources:
        kept = previous.unchanged(source) if previous is not None else None
        if kept:  # same size and time as in the previous index: not even read again
            report.files_unchanged += 1
            report.files_indexed += 1
            yield kept, source
            continue
        indexed = False
        try:
            for document in extract_documents(source, config.max_file_size, config.records, fields):
                if isinstance(document, SkippedFile):
                    _record_skip(report, document, config.strict)
                    continue
                for note in document.notes:
                    _record_skip(report, note, config.strict)
                chunks = chunk_document(document, embedder.tokenizer, settings)
                if not chunks:
                    where = f"{source.path}#{document.record_id}" if document.record_id else source.path
                    report.skipped.append(SkippedFile(where, "empty or whitespace-only"))
                    continue
                indexed = True
                yield chunks, None
        except StrictModeError:
            raise
        except Exception as exc:  # one bad file must not stop the build
            failure = SkippedFile(source.path, f"failed: {type(exc).__name__}: {exc}", failed=True)
            _record_skip(report, failure, config.strict)
        report.files_indexed += indexed
        if indexed and previous is not None and source.path in previous.paths:
            report.files_updated += 1
        elif indexed:
            report.files_added += 1
        yield [], source


@dataclass
class UpdatePlan:
    """What ``build_index`` would do to the index of a folder, judged by size and mtime."""

    index_dir: Path
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Return the plan as JSON-ready data."""
        return {
            "index": str(self.index_dir),
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "skipped": [s.to_dict() for s in self.skipped],
        }


def plan_update(
    folder: str | Path, index_dir: str | Path | None = None, config: BuildConfig | None = None
) -> UpdatePlan:
    """Say which files a build would add, re-read, remove or keep, without writing anything.

    Only the walk and the index's own records are read: no model is loaded, no file is opened.
    """
    root = _check_folder(Path(folder))
    target = resolve_path(index_dir) if index_dir else default_index_dir(root)
    config = config or BuildConfig()
    known: dict[str, tuple[int, int]] = {}
    if _existing_settings(target) is not None:
        try:
            table = pq.read_table(target / CHUNKS_FILE, columns=["path", "file_size", "file_mtime"])
        except (OSError, pa.ArrowException):
            table = None
        if table is not None:
            mtimes = table.column("file_mtime").cast(pa.int64()).to_pylist()
            for path, size, mtime in zip(
                table.column("path").to_pylist(), table.column("file_size").to_pylist(), mtimes, strict=True
            ):
                known.setdefault(path, (size, mtime))
    plan = UpdatePlan(index_dir=target)
    seen = set()
    for found in walk_folder(
        root, exclude=(target,), path_filter=PathFilter(root, config.include, config.exclude)
    ):
        if isinstance(found, SkippedFile):
            plan.skipped.append(found)
            continue
        seen.add(found.path)
        before = known.get(found.path)
        if before is None:
            plan.added.append(found.path)
        elif before == (found.size, round(found.mtime * 1_000_000)):
            plan.unchanged.append(found.path)
        else:
            plan.changed.append(found.path)
    plan.removed = sorted(set(known) - seen)
    return plan
