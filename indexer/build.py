"""The build pipeline: walk, extract, chunk, embed, store."""

from __future__ import annotations

import contextlib
import importlib.util
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from indexer.ann import INDEX_TYPES, choose_type, prepare_parts, stored_type
from indexer.chunking import Tokenizer, iter_chunks
from indexer.config import INDEX_DIRNAME, BuildConfig, ChunkingConfig, ResolvedChunking
from indexer.distributed import (
    ENGINES,
    RayOptions,
    RayResult,
    ResumeSettingsError,
    close_journal,
    journal_names,
    journal_part,
    journal_path,
    journaled_count,
    journaled_parts,
    read_and_embed,
    start_journal,
)
from indexer.embedding import SemindexWarning, SentenceTransformerEmbedder, load_embedder
from indexer.errors import (
    IndexExistsError,
    IndexWriteError,
    InputError,
    ModelError,
    NothingToIndexError,
    StrictModeError,
)
from indexer.extract import extract_documents
from indexer.extract.records import RecordFields
from indexer.filetable import FileEntry, mtime_us, write_file_table
from indexer.manifest import MANIFEST_FILE, IndexManifest, PartRef
from indexer.models import resolve_model
from indexer.onnx_model import add_query_model, check_query_model, query_model_files, query_model_problem
from indexer.paths import resolve_path
from indexer.pipeline import BuildProgress, Pipeline, ProgressCallback
from indexer.records import BuildReport, Chunk, SkippedFile, SourceFile
from indexer.reuse import PreviousIndex
from indexer.store import (
    FAISS_TYPE,
    IndexLock,
    PartWriter,
    ann_problem,
    check_target,
    collect_garbage,
    commit,
    file_sha256,
    new_id,
    remove_index_folder,
)
from indexer.walk import PathFilter, walk_folder

MAX_SMALL_PARTS = 4  # more parts than this under a quarter of the part size are merged


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
    wait: bool = False,
    on_wait: Callable[[], None] | None = None,
    engine: str = "local",
    ray: RayOptions | None = None,
    resume: bool = False,
) -> BuildReport:
    """Index every readable text file under ``folder``, or bring its existing index up to date.

    Args:
        folder: The folder of documents.
        index_dir: Where the index lives; ``folder/.semindex`` by default.
        model: Model name or path; by default the existing index's model, else the default model.
        embedder: An already loaded model (overrides ``model``).
        chunking: Chunk size and overlap; by default the existing index's, else the model's limit.
        config: Other build settings.
        rebuild: Start from scratch, even if the index was built with other settings.
        progress: Called with a BuildProgress after each embedded batch.
        wait: Wait for another writer of the same index to finish instead of failing.
        on_wait: Called once when ``wait`` finds the index busy.
        engine: "local" (this process) or "ray" (reading, chunking, embedding and part writing
            run as Ray Data stages on a Ray cluster: indexer/distributed.py).
        ray: How the Ray engine joins and uses the cluster.
        resume: Take the vectors of the parts an interrupted build left (its journal) instead
            of embedding them again; without it they are deleted.

    Returns:
        A BuildReport with counts, skipped files and timings.
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (got {engine!r})")
    root = _check_folder(Path(folder))
    target = resolve_path(index_dir) if index_dir else default_index_dir(root)
    _check_target(root, target)
    created = not target.exists()
    with IndexLock(target, wait=wait, on_wait=on_wait):
        try:
            run = _Run(engine, ray or RayOptions(), resume)
            return _build_locked(
                root,
                target,
                model,
                embedder,
                chunking,
                config or BuildConfig(),
                rebuild,
                progress,
                started,
                run,
            )
        except ResumeSettingsError:
            raise  # the interrupted build's journal and parts stay as they were
        except BaseException:
            kept = journaled_count(target)
            if kept:  # whole parts stay for --resume; a later build without it deletes them
                warnings.warn(
                    f"{kept} whole part(s) of this unfinished build are kept: run the same command "
                    "with --resume to use their vectors instead of embedding those chunks again",
                    SemindexWarning,
                    stacklevel=2,
                )
            else:
                with contextlib.suppress(OSError):
                    journal_path(target).unlink()  # it lists nothing worth keeping
                if created and not (target / "manifest.json").exists():
                    remove_index_folder(target)  # a first build that failed leaves nothing behind
            raise


@dataclass(frozen=True)
class _Run:
    """How this build runs: the engine, its Ray settings, and whether it resumes."""

    engine: str = "local"
    ray: RayOptions = field(default_factory=RayOptions)
    resume: bool = False


@dataclass
class FolderState:
    """The folder compared with the index: what is kept as it is and what must be read."""

    kept: dict[str, FileEntry] = field(default_factory=dict)  # unchanged, by size and time or hash
    touched: int = 0  # kept files whose time changed but whose content did not
    to_read: list[SourceFile] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    walk_skips: list[SkippedFile] = field(default_factory=list)
    sources: dict[str, SourceFile] = field(default_factory=dict)  # every file found, by path


def _survey(
    root: Path, target: Path, path_filter: PathFilter, known: dict[str, FileEntry], old: set[str]
) -> FolderState:
    """Compare the folder with ``known`` entries: cheap first (size and time), exact second (hash)."""
    state = FolderState()
    for found in walk_folder(root, exclude=(target,), path_filter=path_filter):
        if isinstance(found, SkippedFile):
            state.walk_skips.append(found)
            continue
        state.sources[found.path] = found
        entry = known.get(found.path)
        if (
            entry is not None
            and entry.same_stat(found.size, found.mtime)
            and not _readable_again(entry, found)
        ):
            state.kept[found.path] = entry
            continue
        if entry is not None and entry.sha256 and entry.size == found.size:
            try:
                same = file_sha256(found.absolute) == entry.sha256
            except OSError:
                same = False
            if same:
                state.kept[found.path] = entry.touched(found.mtime)
                state.touched += 1
                continue
        state.to_read.append(found)
    state.removed = sorted(old - set(state.sources))
    return state


def _readable_again(entry: FileEntry, source: SourceFile) -> bool:
    """Whether a file that could not be read last time (permission denied, say: a chmod changes
    neither size nor time) can be now, so that it is read again."""
    if entry.status != "failed" or not (entry.reason or "").startswith("cannot read"):
        return False
    try:
        with open(source.absolute, "rb") as handle:
            handle.read(1)
    except OSError:
        return False
    return True


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
    run: _Run,
) -> BuildReport:
    current = _existing_settings(target)
    if current is not None:  # what an interrupted write left behind (but what --resume uses)
        collect_garbage(target, current, journal_names(target) if run.resume else ())
    elif not rebuild and (target / MANIFEST_FILE).exists():
        IndexManifest.load(target)  # a damaged or newer manifest: say so, never write over it
    existing = None if rebuild else current
    if (
        existing is not None
        and existing.root
        and Path(existing.root) != root
        and target != default_index_dir(root)
    ):
        raise IndexExistsError(
            f"{target} is the index of {existing.root}, not of {root}; add --rebuild to replace it, "
            "or choose another --index"
        )
    explicit_chunking = chunking is not None
    if existing is not None:
        if model is None and embedder is None:
            model = existing.model_name
        wanted = embedder.name if embedder is not None else resolve_model(model).name
        _check_same_model(existing, wanted, target)
        if chunking is None:
            chunking = ChunkingConfig(
                existing.chunking.get("max_tokens"), existing.chunking.get("overlap_tokens", 32)
            )
        elif chunking.max_tokens not in (None, existing.chunking.get("max_tokens")) or (
            chunking.overlap_tokens != existing.chunking.get("overlap_tokens")
        ):  # refused even when no file changed (no model is needed to tell)
            size = chunking.max_tokens or int(existing.chunking.get("max_tokens", 0))
            _check_same_chunking(existing, ResolvedChunking(size, chunking.overlap_tokens), target)
    path_filter = PathFilter(root, config.include, config.exclude)  # bad patterns fail before the model loads
    previous = PreviousIndex.load(target, existing) if existing is not None else None
    extraction = config.extraction()
    old_files = previous.files if previous is not None else {}
    same_extraction = previous is not None and previous.manifest.extraction in ({}, extraction)
    _notify(progress, "scanning", started)
    state = _survey(root, target, path_filter, old_files if same_extraction else {}, set(old_files))

    old_parts = previous.manifest.part_refs if previous is not None else []
    dropped = set(old_files) - set(state.kept)  # their rows go: removed, or read again
    affected = {part for path in dropped for part in old_files[path].parts}
    # Format 1 and parts without keyword postings are rewritten (their vectors are kept).
    migrate = previous is not None and any(not part.has_keywords for part in old_parts)
    query_model = _query_model_change(existing, target, config)
    retype = existing is not None and _index_type(
        config, existing, int(existing.counts.get("chunks", 0))
    ) != (
        stored_type(existing.faiss),
        existing.faiss.get("choice", "auto"),
    )
    # A missing or damaged ANN file is built again from the part's exact vectors (nothing re-read).
    retype = retype or any(ann_problem(target, part) for part in old_parts)
    nothing_to_do = (
        not state.to_read
        and not affected
        and not state.touched
        and not migrate
        and not query_model
        and not retype
    )
    if previous is not None and not nothing_to_do:
        affected.update(part.id for part in old_parts if not part.has_keywords)
        small = [p.id for p in old_parts if p.id not in affected and p.rows < config.part_rows // 4]
        if len(small) > MAX_SMALL_PARTS:
            affected.update(small)  # compaction: many small parts become a few full ones
        # Rows about to be copied are checked in full first: damage is never carried into a
        # new part under fresh checksums. The files of a damaged part are read again.
        damaged = previous.damaged([p for p in old_parts if p.id in affected])
        for path, entry in list(state.kept.items()):
            if set(entry.parts) & damaged:
                del state.kept[path]
                state.to_read.append(state.sources[path])
        dropped = set(old_files) - set(state.kept)

    report = BuildReport(index_dir=target, updated=previous is not None, engine=run.engine)
    for skipped in state.walk_skips:
        _record_skip(report, skipped, config.strict)
    for entry in state.kept.values():
        if entry.status == "indexed":
            report.files_indexed += 1
            report.files_unchanged += 1
            report.chunks_reused += entry.chunks
        else:
            _record_skip(report, entry.skipped_entry(), config.strict)  # type: ignore[arg-type]
        for note in entry.notes:
            _record_skip(report, note, config.strict)
    report.files_removed = sum(old_files[p].status == "indexed" for p in state.removed)
    if previous is not None and nothing_to_do:
        report.chunks = int(previous.manifest.counts.get("chunks", 0))
        report.seconds = time.perf_counter() - started
        report.written, report.version = False, previous.manifest.version
        return report  # nothing changed: nothing is written

    export = query_model == "add"
    if state.to_read or embedder is not None or explicit_chunking or existing is None or export:
        _notify(progress, "loading model", started)
        loading = time.perf_counter()
        embedder = embedder or load_embedder(model)
        report.model_seconds = time.perf_counter() - loading
        settings = (chunking or ChunkingConfig()).resolve(embedder.token_limit)
        if existing is not None:
            _check_same_chunking(existing, settings, target)
        model_facts, dimension = embedder.describe(), embedder.dimension
    else:
        assert existing is not None
        settings = ResolvedChunking(existing.chunking["max_tokens"], existing.chunking["overlap_tokens"])
        model_facts, dimension = dict(existing.model), existing.dimension

    header = {"model": model_facts.get("name"), "chunking": settings.to_dict(), "extraction": extraction}
    resumed = journaled_parts(target, header) if run.resume else []
    reuse = _reuse_source(target, previous, resumed, model_facts)
    try:
        writer = PartWriter(target, dimension, config.part_rows, config.row_group_size)
        journal = start_journal(target, header)
        for part in resumed:  # still listed if this build is interrupted too
            journal_part(journal, part)
    except OSError as exc:
        raise IndexWriteError(f"cannot write the index at {target}: {exc.strerror or exc}") from exc
    writer.on_part = lambda part: journal_part(journal, part)
    report.parts_resumed = len(resumed)
    try:
        for part in old_parts:
            if part.id in affected and previous is not None:
                table, vectors, keywords = previous.part_rows(part)
                keep = np.array(
                    [path not in dropped for path in table.column("path").to_pylist()], dtype=bool
                )
                terms = keywords.kept_rows(keep) if keywords is not None else None
                writer.add_table(table.filter(pa.array(keep)), vectors[keep], terms)
        read: dict[str, FileEntry] = {}
        cluster = RayResult([], {}, {})
        if state.to_read and run.engine == "ray":
            assert embedder is not None
            cluster = read_and_embed(
                state.to_read, target, embedder, settings, config, run.ray, report, old_files,
                reuse.manifest if reuse is not None else None, journal, progress,
            )  # fmt: skip
            read.update(cluster.entries)
        elif state.to_read:
            assert embedder is not None
            pipeline = Pipeline(state.to_read, embedder, config, writer, report, progress, reuse)
            tokenizer = embedder.tokenizer
            chunks_of = _document_chunks(state.to_read, tokenizer, settings, config, report, old_files, read)
            for chunks, finished in chunks_of:
                pipeline.add(chunks, finished)
            pipeline.flush()
        parts = [p for p in old_parts if p.id not in affected] + writer.finish() + cluster.parts
        manifest = _new_manifest(current, existing, parts, model_facts, settings, extraction, root)
        kind, choice = _index_type(config, existing, manifest.counts["chunks"])
        fresh = {p.id for p in writer.parts} | {p.id for p in cluster.parts}
        previous_faiss = existing.faiss if existing is not None else None
        parts, manifest.faiss = prepare_parts(target, manifest, parts, kind, choice, previous_faiss, fresh)
        manifest.parts = [p.to_dict() for p in parts]
        if export and embedder is not None:
            manifest.query_model = _export_query_model(embedder, target)
        elif query_model == "drop":
            manifest.query_model = {"format": "none", "reason": "turned off (--no-onnx)"}
        elif existing is not None:
            manifest.query_model = existing.query_model
        if manifest.counts["chunks"] == 0 and previous is None:
            raise NothingToIndexError(_nothing_message(root, report))
        report.emptied = manifest.counts["chunks"] == 0  # every document is gone: so is the index
        entries = _file_entries(state.kept, read, affected, writer.paths_in_part | cluster.paths_in_part)
        manifest.file_table = write_file_table(target, entries)
        manifest.counts.update(documents=sum(e.status == "indexed" for e in entries), files=len(entries))
        report.chunks = manifest.counts["chunks"]
        report.seconds = time.perf_counter() - started
        manifest.build = {
            "seconds": round(report.seconds, 3),
            "tokens": report.tokens,
            "skipped": len(report.skipped),
        }
        commit(target, manifest)
        report.version = manifest.version
    except OSError as exc:
        writer.abort(keep_finished=True)
        raise IndexWriteError(
            f"cannot write the index at {target}: {exc.strerror or exc}; the previous index is unchanged"
        ) from exc
    except BaseException:
        writer.abort(keep_finished=True)
        raise
    finally:
        close_journal(journal)
    return report


def _reuse_source(
    target: Path, previous: PreviousIndex | None, resumed: list[PartRef], model_facts: dict[str, object]
) -> PreviousIndex | None:
    """Where known vectors come from: the index's current parts and the parts an interrupted
    build journaled (``--resume``)."""
    if not resumed or (previous is not None and previous.manifest.format_version < 2):
        return previous
    if previous is not None:
        base, files = previous.manifest, previous.files
    else:
        base = IndexManifest(model=dict(model_facts), chunking={}, faiss={}, counts={})
        files = {}
    merged = replace(base, parts=[p.to_dict() for p in base.part_refs] + [p.to_dict() for p in resumed])
    return PreviousIndex(target, merged, files)


def _index_type(config: BuildConfig, existing: IndexManifest | None, total: int) -> tuple[str, str]:
    """The FAISS structure this write gives the index, and whether the user chose it."""
    if config.index_type not in (None, "auto"):
        if config.index_type not in INDEX_TYPES:
            raise InputError(f"--index-type must be auto or one of {', '.join(INDEX_TYPES)}")
        return config.index_type, "user"
    if config.index_type is None and existing is not None and existing.faiss.get("choice") == "user":
        return stored_type(existing.faiss), "user"
    return choose_type(total), "auto"


def _query_model_change(existing: IndexManifest | None, target: Path, config: BuildConfig) -> str | None:
    """What this write does to the index's ONNX query model: "add", "drop" or nothing (None).

    ``config.query_model`` None keeps the index's choice: an index gets one unless it was turned
    off, or an export of its model failed before (that is not tried again).
    """
    facts = existing.query_model if existing is not None else None
    has = query_model_files(facts)
    broken = query_model_problem(facts) is not None
    if config.query_model is False:
        return "drop" if has or facts is None or broken else None
    if facts is not None and not has and not broken and config.query_model is None:
        return None  # turned off, or the model cannot be exported
    if has and not check_query_model(target, facts):
        return None  # present and whole (a damaged or missing export is made again)
    return "add" if importlib.util.find_spec("onnxruntime") is not None else None


def _export_query_model(embedder: SentenceTransformerEmbedder, target: Path) -> dict[str, Any]:
    try:
        return add_query_model(embedder, target, new_id())
    except ModelError as exc:
        warnings.warn(f"{exc}; queries will load the model with torch", SemindexWarning, stacklevel=2)
        return {"format": "none", "reason": str(exc)}


def _notify(progress: ProgressCallback | None, stage: str, started: float) -> None:
    if progress is not None:
        progress(BuildProgress(stage, 0, 0, 0, 0, 0, time.perf_counter() - started))


def _new_manifest(
    current: IndexManifest | None,
    existing: IndexManifest | None,
    parts: list[PartRef],
    model_facts: dict[str, object],
    settings: ResolvedChunking,
    extraction: dict[str, object],
    root: Path,
) -> IndexManifest:
    manifest = IndexManifest(
        model=model_facts,
        chunking=settings.to_dict(),
        faiss={"type": FAISS_TYPE, "metric": "inner_product", "ntotal": sum(p.rows for p in parts)},
        counts={"chunks": sum(p.rows for p in parts), "parts": len(parts)},
        parts=[p.to_dict() for p in parts],
        extraction=extraction,
        root=str(root),
        version=current.version + 1 if current is not None else 1,
    )
    if existing is not None:
        manifest.created_at = existing.created_at
    return manifest


def _file_entries(
    kept: dict[str, FileEntry],
    read: dict[str, FileEntry],
    rewritten: set[str],
    paths_in_part: dict[str, set[str]],
) -> list[FileEntry]:
    """Every file's entry, pointing at the parts that now hold its rows."""
    new_parts: dict[str, list[str]] = {}
    for part_id, paths in paths_in_part.items():
        for path in paths:
            new_parts.setdefault(path, []).append(part_id)
    entries = []
    for entry in kept.values():
        still = tuple(p for p in entry.parts if p not in rewritten)
        entries.append(replace(entry, parts=still + tuple(new_parts.get(entry.path, ()))))
    for entry in read.values():
        entries.append(replace(entry, parts=tuple(new_parts.get(entry.path, ()))))
    return entries


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
    tokenizer: Tokenizer,
    settings: ResolvedChunking,
    config: BuildConfig,
    report: BuildReport,
    old_files: dict[str, FileEntry],
    entries: dict[str, FileEntry],
) -> Iterator[tuple[list[Chunk], SourceFile | None]]:
    """Chunks document by document; a file's last item carries the file, to mark it done.

    A file that is skipped or fails is recorded in the report and yields no chunks, so one bad
    file never stops the build. Record files yield once per record, so memory stays flat. Each
    file's entry for the file table goes into ``entries``.
    """
    fields = RecordFields(config.id_field, config.text_fields)
    for source in sources:
        skips: list[SkippedFile] = []
        chunk_count = 0
        failed = False
        try:
            digest: str | None = file_sha256(source.absolute)
        except OSError:
            digest = None  # extraction fails on it below, with the reason
        try:
            for document in extract_documents(source, config.max_file_size, config.records, fields):
                if isinstance(document, SkippedFile):
                    _record_skip(report, document, config.strict)
                    skips.append(document)
                    continue
                for note in document.notes:
                    _record_skip(report, note, config.strict)
                    skips.append(note)
                found = 0
                for chunks in iter_chunks(document, tokenizer, settings):
                    found += len(chunks)
                    chunk_count += len(chunks)
                    yield chunks, None  # a large file goes on to the model a window at a time
                if not found:
                    where = f"{source.path}#{document.record_id}" if document.record_id else source.path
                    empty = SkippedFile(where, "empty or whitespace-only")
                    report.skipped.append(empty)
                    skips.append(empty)
                    continue
        except StrictModeError:
            raise
        except Exception as exc:  # one bad file must not stop the build
            # Chunks already handed on stay indexed (the file's entry then says where it broke off).
            after = f" after {chunk_count} chunks" if chunk_count else ""
            failure = SkippedFile(source.path, f"failed{after}: {type(exc).__name__}: {exc}", failed=True)
            _record_skip(report, failure, config.strict)
            skips.append(failure)
            failed = not chunk_count
        entries[source.path] = _entry_for(source, digest, chunk_count, skips, failed)
        indexed = chunk_count > 0
        report.files_indexed += indexed
        before = old_files.get(source.path)
        if indexed and before is not None and before.status == "indexed":
            report.files_updated += 1
        elif indexed:
            report.files_added += 1
        yield [], source


def _entry_for(
    source: SourceFile, digest: str | None, chunks: int, skips: list[SkippedFile], failed: bool
) -> FileEntry:
    entry = FileEntry(source.path, source.size, mtime_us(source.mtime), digest, chunks=chunks)
    if failed or not chunks:
        whole = [s for s in skips if s.path == source.path]
        reason = whole[-1].reason if whole else "no record with text"
        notes = tuple(s for s in skips if s not in whole[-1:])
        failed = failed or any(s.failed for s in whole[-1:])
        return replace(entry, status="failed" if failed else "skipped", reason=reason, notes=notes)
    return replace(entry, notes=tuple(skips))


@dataclass
class UpdatePlan:
    """What ``build_index`` would do to the index of a folder."""

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

    Only the walk, the index's file table and (for files whose time changed) the files' bytes
    are read: no model is loaded and nothing is written.
    """
    root = _check_folder(Path(folder))
    target = resolve_path(index_dir) if index_dir else default_index_dir(root)
    config = config or BuildConfig()
    path_filter = PathFilter(root, config.include, config.exclude)
    existing = _existing_settings(target)
    previous = PreviousIndex.load(target, existing) if existing is not None else None
    old_files = previous.files if previous is not None else {}
    same = previous is not None and previous.manifest.extraction in ({}, config.extraction())
    state = _survey(root, target, path_filter, old_files if same else {}, set(old_files))
    plan = UpdatePlan(index_dir=target, removed=state.removed, skipped=list(state.walk_skips))
    plan.unchanged = sorted(state.kept)
    for source in state.to_read:
        (plan.changed if source.path in old_files else plan.added).append(source.path)
    plan.skipped += [s for e in state.kept.values() if (s := e.skipped_entry()) is not None]
    return plan
