"""The build on Ray: the local build's reading, chunking, embedding and part writing as Ray Data stages.

``semindex index FOLDER --engine ray [--address auto] [--num-gpus N] [--batch-size N] [--resume]``

The driver walks the folder and compares it with the index exactly as a local build does
(``indexer/build.py``); only the files it must read go to Ray, as a dataset of file rows::

    files ─map_batches(read_and_chunk: CPU tasks)─▶ chunk rows, and one marker row per file
          ─map_batches(Embedder: an actor pool, GPUs where the cluster has them)─▶ + vectors
          ─map_batches(write_part: CPU tasks, one part a batch)─▶ part files on the index's disk

Reading and chunking are the local build's own functions (``_document_chunks``: the same
extractors, the same tokenizer, the same skips); the writer is the same ``PartWriter``, so the
parts are in the format ``docs/format.md`` defines. Only a reference to each part and each
file's entry for the file table come back to the driver, never chunk text or vectors: the
driver's memory does not grow with the corpus beyond the file list it walked. The driver then
writes the file table and the manifest, in one rename, as a local build does.

The driver journals each part as it arrives (``build-journal.jsonl``, after the part's files
are fsynced). A build that dies part-way leaves the journal and its parts, which no manifest
lists; ``--resume`` reads the files again and takes every vector the journaled parts hold
instead of embedding it again. Without ``--resume`` they are deleted like other leftovers.
Ray retries a task whose worker dies (a read, an embedding batch or a part write); a part
written by a task that died before it answered is a leftover too, never listed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import pickle
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from indexer.config import BuildConfig, ResolvedChunking
from indexer.errors import IndexCorruptError, IndexWriteError, InputError, ModelError, SemindexError
from indexer.filetable import FileEntry
from indexer.manifest import IndexManifest, PartRef
from indexer.records import BuildReport, SkippedFile, SourceFile
from indexer.store import CHUNK_SCHEMA, PartWriter, check_part_files, chunks_to_table, crash_point, fsync_path

RAY_HINT = 'install the extra: pip install "semindex[ray]"'
ENGINES = ("local", "ray")
JOURNAL_FILE = "build-journal.jsonl"
FILES_PER_TASK = 8  # files read and chunked by one task: small, so that work spreads evenly
READ_CPUS = 0.25  # logical CPUs a read or write task asks for (the embedders take the rest)
EMBED_CPUS = 0.75  # logical CPUs an embedding actor asks for on a cluster without GPUs
# Chunk rows, and one marker row per file carrying its file-table entry (pickled).
STAGE_SCHEMA = CHUNK_SCHEMA.append(pa.field("kind", pa.string())).append(pa.field("payload", pa.binary()))


class ResumeSettingsError(InputError):
    """``--resume`` found the journal of a build with other settings."""


@dataclass(frozen=True)
class RayOptions:
    """How a build uses Ray."""

    address: str | None = None  # a cluster to join ("auto": the one `ray start` began here)
    num_gpus: float | None = None  # GPUs per embedding actor (None: 1 where the cluster has GPUs)
    batch_size: int | None = None  # chunks per embedding batch (None: BuildConfig.embed_batch_chunks)
    embedders: int | None = None  # embedding actors (None: one per GPU, else one per CPU)

    def __post_init__(self) -> None:
        if self.num_gpus is not None and not math.isfinite(self.num_gpus):
            raise InputError(f"--num-gpus must be a number of GPUs (got {self.num_gpus})")
        if self.num_gpus is not None and self.num_gpus < 0:
            raise InputError(f"--num-gpus cannot be negative (got {self.num_gpus})")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.embedders is not None and self.embedders < 1:
            raise InputError(f"embedders must be at least 1 (got {self.embedders})")


def import_ray() -> Any:
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ModelError(f"the Ray engine needs ray, which is not installed; {RAY_HINT}") from exc
    return ray


def connect(address: str | None) -> Any:
    """Join the Ray cluster at ``address`` (None: start a local one) unless already joined."""
    ray = import_ray()
    logging.getLogger("ray").setLevel(logging.ERROR)  # the driver shows its own progress and errors
    if not ray.is_initialized():
        _check_reachable(address)
        try:
            ray.init(
                address=address,
                ignore_reinit_error=True,
                log_to_driver=False,
                include_dashboard=False,
                logging_level=logging.ERROR,
            )
        except (OSError, RuntimeError, ValueError) as exc:  # OSError: ConnectionError, a bad temp folder
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise InputError(f"cannot start or join {where}: {str(exc).splitlines()[0]}") from exc
    return ray


def _check_reachable(address: str | None) -> None:
    """A cluster address of the form HOST:PORT must answer within seconds: Ray itself would
    retry an address where nothing listens for minutes."""
    import socket

    if not address or address in ("auto", "local") or "://" in address or ":" not in address:
        return  # Ray's own checks answer at once for these
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=5):
            pass
    except (OSError, ValueError, OverflowError) as exc:
        raise InputError(
            f"cannot join the Ray cluster at {address}: nothing answers there ({exc}); "
            "check the address that `ray start --head` printed"
        ) from exc


def original_error(exc: BaseException) -> SemindexError | None:
    """The semindex error a Ray task raised, unwrapped from Ray's exceptions (None if none)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, SemindexError):
            return cause
        if isinstance(current, SemindexError) and type(current).__module__.startswith("indexer"):
            return current
        current = cause if isinstance(cause, BaseException) else current.__cause__
    return None


def die_once(stage: str) -> None:
    """Kill this worker process once, as a crashed node would (fault-tolerance tests).

    ``SEMINDEX_RAY_KILL_ONCE`` names a folder; while it holds a file ``armed-STAGE``, the first
    worker to reach ``stage`` renames it to ``fired-STAGE`` and dies.
    """
    folder = os.environ.get("SEMINDEX_RAY_KILL_ONCE")
    if not folder:
        return
    try:
        os.rename(os.path.join(folder, f"armed-{stage}"), os.path.join(folder, f"fired-{stage}"))
    except OSError:
        return  # not armed, or another worker took it
    os.kill(os.getpid(), signal.SIGKILL)


# ---- the journal of parts written by a build in progress


def journal_path(target: Path) -> Path:
    return target / JOURNAL_FILE


def start_journal(target: Path, header: dict[str, Any]) -> Any:
    """A fresh journal for this build (the old one, if any, was used or discarded already)."""
    handle = open(journal_path(target), "w", encoding="utf-8")  # noqa: SIM115 (closed by the build)
    _append(handle, {"kind": "build"} | header)
    return handle


def journal_part(handle: Any, part: PartRef) -> None:
    _append(handle, {"kind": "part", "part": part.to_dict()})
    crash_point("part-journaled")


def _append(handle: Any, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record, sort_keys=True) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _journal_records(target: Path) -> list[dict[str, Any]]:
    """The journal's records up to the first line that is not one (a line cut off by a crash,
    or damage: what follows it was never confirmed). No journal, or an unreadable one: none."""
    try:
        data = journal_path(target).read_bytes()
    except OSError:
        return []
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError is one too
            break
        if not isinstance(record, dict):
            break
        records.append(record)
    return records


def _journal_part(target: Path, record: dict[str, Any]) -> PartRef | None:
    """The part a journal record names, if its files are there, whole and of its size."""
    import faiss

    if record.get("kind") != "part":
        return None
    try:
        part = PartRef.from_dict(record["part"])
        check_part_files(target, part)
        vectors = faiss.read_index(str(target / part.vectors_name), faiss.IO_FLAG_MMAP)
        if vectors.ntotal != part.rows:
            return None
    except (IndexCorruptError, KeyError, TypeError, ValueError, AttributeError, RuntimeError, OSError):
        return None
    return part


def journaled_parts(target: Path, header: dict[str, Any]) -> list[PartRef]:
    """The whole parts an interrupted build journaled, if it had the same settings as this one.

    A damaged or missing part is left out (its chunks are simply embedded again).
    """
    records = _journal_records(target)
    if not records or records[0].get("kind") != "build":
        return []
    old = {k: v for k, v in records[0].items() if k != "kind"}
    if old != header:
        raise ResumeSettingsError(
            "the interrupted build used other settings (model, chunking or reading); "
            "run again without --resume to start over"
        )
    parts: dict[str, PartRef] = {}
    for record in records[1:]:
        part = _journal_part(target, record)
        if part is not None:
            parts.setdefault(part.id, part)
    return list(parts.values())


def journaled_count(target: Path) -> int:
    """How many whole parts the journal of an unfinished build lists (0 when there is none)."""
    return len({p.id for p in (_journal_part(target, r) for r in _journal_records(target)[1:]) if p})


def journal_names(target: Path) -> set[str]:
    """The files of the parts the journal lists (kept from cleanup while a build resumes)."""
    names = {JOURNAL_FILE}
    for record in _journal_records(target):
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):
            if record.get("kind") == "part":
                part = PartRef.from_dict(record["part"])
                names.update((part.chunks_name, part.vectors_name, part.keywords_name))
    return names


# ---- the stages, run in Ray workers


class _Chunker:
    """Reads and chunks a batch of files with the local build's code; one marker row per file."""

    def __init__(self, settings: ResolvedChunking, config: BuildConfig, counter: Any) -> None:
        import ray

        # From the counter, not as an argument: a restartable actor's large arguments would sit
        # in the object store, which Ray warns about on the driver's terminal.
        self.tokenizer = pickle.loads(ray.get(counter.tokenizer.remote()))
        self.settings, self.config, self.counter = settings, config, counter

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            return self._chunk(batch)
        except SemindexError as exc:  # --strict: sent to the driver as a row, raised there
            return _stage_table(CHUNK_SCHEMA.empty_table(), [], error=exc)

    def _chunk(self, batch: pa.Table) -> pa.Table:
        from indexer.build import _document_chunks

        die_once("read")
        columns = batch.to_pydict()
        sources = [
            SourceFile(path, Path(absolute), int(size), float(mtime))
            for path, absolute, size, mtime in zip(
                columns["path"], columns["absolute"], columns["size"], columns["mtime"], strict=True
            )
        ]
        report = BuildReport(index_dir=Path())  # collects these files' skips
        entries: dict[str, FileEntry] = {}
        tables, markers, noted = [], [], 0
        for chunks, finished in _document_chunks(
            sources, self.tokenizer, self.settings, self.config, report, {}, entries
        ):
            if chunks:
                tables.append(chunks_to_table(chunks))
            if finished is not None:
                skipped, noted = report.skipped[noted:], len(report.skipped)
                markers.append(pickle.dumps((entries[finished.path], skipped)))
        chunk_rows = pa.concat_tables(tables) if tables else CHUNK_SCHEMA.empty_table()
        self.counter.add.remote(
            files=len(sources), bytes=sum(s.size for s in sources), chunks=chunk_rows.num_rows
        )
        return _stage_table(chunk_rows, markers)


def _stage_table(chunk_rows: pa.Table, markers: list[bytes], error: SemindexError | None = None) -> pa.Table:
    """Chunk rows, then one ``file`` row per finished file (or one ``error`` row: a semindex
    error travels as data, since Ray's exceptions keep only its text)."""
    count = chunk_rows.num_rows
    chunk_part = chunk_rows.append_column("kind", pa.array(["chunk"] * count, pa.string())).append_column(
        "payload", pa.nulls(count, pa.binary())
    )
    kinds = ["file"] * len(markers)
    if error is not None:
        kinds, markers = ["error"], [pickle.dumps(error)]
    marker_part = pa.table(
        {field.name: pa.nulls(len(markers), field.type) for field in CHUNK_SCHEMA}
        | {"kind": pa.array(kinds, pa.string()), "payload": pa.array(markers, pa.binary())}
    )
    return pa.concat_tables([chunk_part.cast(STAGE_SCHEMA), marker_part.cast(STAGE_SCHEMA)])


class _Embedder:
    """One embedding actor: the model loaded once; vectors known to the reuse parts are not embedded."""

    def __init__(
        self,
        ref: Any,
        device: str | None,
        threads: int,
        reuse: tuple[str, IndexManifest] | None,
        slice_size: int,
        counter: Any,
    ) -> None:
        from indexer.embedding import _cached_embedder
        from indexer.reuse import PreviousIndex
        from indexer.threads import set_threads

        set_threads(threads)
        self.embedder = _cached_embedder(ref, device)
        self.previous = None
        if reuse is not None:
            self.previous = PreviousIndex(Path(reuse[0]), reuse[1], {})
        self.slice_size, self.counter = slice_size, counter

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            return self._embed(batch)
        except SemindexError as exc:  # sent to the driver as a row, raised there
            error = _stage_table(CHUNK_SCHEMA.empty_table(), [], error=exc)
            flat = pa.array(np.zeros(self.embedder.dimension, dtype=np.float32))
            return error.append_column(
                "vector", pa.FixedSizeListArray.from_arrays(flat, self.embedder.dimension)
            )

    def _embed(self, batch: pa.Table) -> pa.Table:
        from indexer.pipeline import embed_in_length_order
        from indexer.reuse import reuse_key

        die_once("embed")
        dimension = self.embedder.dimension
        kinds = batch.column("kind").to_pylist()
        rows = [i for i, kind in enumerate(kinds) if kind == "chunk"]
        vectors = np.zeros((batch.num_rows, dimension), dtype=np.float32)
        texts = batch.column("text").to_pylist()
        sections = batch.column("section").to_pylist()
        hashes = batch.column("content_hash").to_pylist()
        tokens = batch.column("tokens").to_pylist()
        known: list[int] = []
        if self.previous is not None and rows:
            found, reused = self.previous.vectors_by_key([reuse_key(hashes[i], sections[i]) for i in rows])
            known = [rows[i] for i in found]
            vectors[known] = reused
        known_set = set(known)
        fresh = [i for i in rows if i not in known_set]

        def on_slice(count: int) -> None:
            self.counter.add.remote(embedded=count)

        if fresh:
            vectors[fresh] = embed_in_length_order(
                self.embedder,
                [f"{sections[i]}\n\n{texts[i]}" if sections[i] else texts[i] for i in fresh],
                [tokens[i] for i in fresh],
                self.slice_size,
                on_slice,
            )
        self.counter.add.remote(embedded=len(known), reused=len(known), tokens=sum(tokens[i] for i in rows))
        flat = pa.array(vectors.reshape(-1), pa.float32())
        return batch.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, dimension))


def _write_part(batch: pa.Table, directory: str, dimension: int, config: BuildConfig) -> pa.Table:
    """Write a batch's chunk rows as one part (fsynced); answer with the part and the file markers."""
    import pyarrow.compute as pc

    die_once("write")
    is_chunk = pc.equal(batch.column("kind"), "chunk")
    chunks = batch.filter(is_chunk)
    payloads: list[bytes] = []
    kinds: list[str] = []
    if chunks.num_rows:
        vectors = chunks.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        writer = PartWriter(
            Path(directory), dimension, max(config.part_rows, chunks.num_rows), config.row_group_size
        )
        try:
            writer.add_table(chunks.select(CHUNK_SCHEMA.names), np.array(vectors.reshape(-1, dimension)))
            parts = writer.finish()
        except (OSError, SemindexError) as exc:  # a full or read-only disk: told to the driver as a row
            writer.abort()
            error = exc
            if isinstance(exc, OSError):
                error = IndexWriteError(f"cannot write the index at {directory}: {exc.strerror or exc}")
            return pa.table({"kind": pa.array(["error"]), "payload": pa.array([pickle.dumps(error)])})
        except BaseException:
            writer.abort()
            raise
        for part in parts:
            kinds.append("part")
            payloads.append(pickle.dumps((part.to_dict(), sorted(writer.paths_in_part[part.id]))))
    others = batch.filter(pc.invert(is_chunk))  # file and error rows, passed on
    kinds += others.column("kind").to_pylist()
    payloads += others.column("payload").to_pylist()
    return pa.table({"kind": pa.array(kinds, pa.string()), "payload": pa.array(payloads, pa.binary())})


class _Counter:
    """Counts the cluster's progress for the driver's progress bar; hands out the tokenizer."""

    def __init__(self, tokenizer: bytes) -> None:
        self.counts = {"files": 0, "bytes": 0, "chunks": 0, "embedded": 0, "reused": 0, "tokens": 0}
        self._tokenizer = tokenizer

    def tokenizer(self) -> bytes:
        return self._tokenizer

    def add(self, **counts: int) -> None:
        for name, value in counts.items():
            self.counts[name] += value

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


# ---- the driver


@dataclass
class RayResult:
    """What the cluster wrote: new parts, which files' rows each holds, and the files' entries."""

    parts: list[PartRef]
    paths_in_part: dict[str, set[str]]
    entries: dict[str, FileEntry]


def read_and_embed(
    sources: list[SourceFile],
    target: Path,
    embedder: Any,
    settings: ResolvedChunking,
    config: BuildConfig,
    options: RayOptions,
    report: BuildReport,
    old_files: dict[str, FileEntry],
    reuse: IndexManifest | None,
    journal: Any,
    progress: Callable[[Any], None] | None,
    device: str | None = None,
) -> RayResult:
    """Read, chunk, embed and write ``sources`` on Ray; record the outcome in ``report``.

    ``reuse`` lists the parts whose vectors are taken instead of embedding (the index's current
    parts and an interrupted build's journaled ones).
    """
    ray = connect(options.address)
    from ray.data import ActorPoolStrategy, DataContext

    for handler in logging.getLogger("ray.data").handlers:  # its session log file keeps them all
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL)
    context = DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws its own
    # Rows reach the writers in file order, so the parts list the rows in a local build's
    # order (ties between equal chunks then break the same way), though cut at other places.
    context.execution_options.preserve_order = True
    with contextlib.suppress(AttributeError):
        context.print_on_execution_start = False
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0))
    per_actor_gpus = options.num_gpus if options.num_gpus is not None else (1.0 if gpus >= 1 else 0.0)
    if per_actor_gpus > gpus:
        raise InputError(f"--num-gpus {per_actor_gpus:g} asks for more GPUs than the cluster has ({gpus:g})")
    cpus = max(1, int(resources.get("CPU", os.cpu_count() or 1)))
    if per_actor_gpus:
        actors = options.embedders or max(1, int(gpus // per_actor_gpus))
        actor_cpus, threads = 1.0, 1
    else:
        actors = options.embedders or cpus
        actor_cpus, threads = EMBED_CPUS, 1
    counter = ray.remote(num_cpus=0)(_Counter).remote(pickle.dumps(embedder.tokenizer))
    reuse_arg = (str(target), reuse) if reuse is not None and reuse.part_refs else None
    items = [{"path": s.path, "absolute": str(s.absolute), "size": s.size, "mtime": s.mtime} for s in sources]
    blocks = max(1, min(len(items), (len(items) + FILES_PER_TASK - 1) // FILES_PER_TASK))
    dataset = (
        ray.data.from_items(items, override_num_blocks=blocks)
        .map_batches(
            _Chunker,
            fn_constructor_args=(settings, config, counter),
            batch_size=FILES_PER_TASK,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(min_size=1, max_size=cpus),
            num_cpus=READ_CPUS,
        )
        .map_batches(
            _Embedder,
            fn_constructor_args=(
                embedder.ref,
                device if not per_actor_gpus else "cuda",
                threads,
                reuse_arg,
                config.embed_slice_chunks,
                counter,
            ),
            batch_size=options.batch_size or config.embed_batch_chunks,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=actors),
            num_cpus=actor_cpus,
            num_gpus=per_actor_gpus or None,
        )
        .map_batches(
            _write_part,
            fn_kwargs={"directory": str(target), "dimension": embedder.dimension, "config": config},
            batch_size=config.part_rows,
            batch_format="pyarrow",
            num_cpus=READ_CPUS,
        )
    )
    result = RayResult([], {}, {})
    started = time.perf_counter()
    files_total, bytes_total = len(sources), sum(s.size for s in sources)
    done = threading.Event()
    files_back = 0

    def report_progress() -> None:
        from indexer.pipeline import BuildProgress

        while not done.wait(0.5):
            try:
                counts = ray.get(counter.snapshot.remote(), timeout=5)
            except Exception:  # a slow answer only delays the bar
                continue
            share = counts["embedded"] / counts["chunks"] if counts["chunks"] else 0.0
            assert progress is not None
            progress(
                BuildProgress(
                    "embedding",
                    files_total,
                    bytes_total,
                    files_back,
                    int(counts["bytes"] * share),
                    counts["embedded"],
                    time.perf_counter() - started,
                )
            )

    watcher = threading.Thread(target=report_progress, daemon=True) if progress is not None else None
    if watcher is not None:
        watcher.start()
    try:
        with warnings.catch_warnings():
            # A small build gives the embedders fewer batches than actors; Ray Data warns of it.
            warnings.filterwarnings("ignore", "The minimum number of concurrent actors", UserWarning)
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for kind, payload in zip(
                    batch.column("kind").to_pylist(), batch.column("payload").to_pylist(), strict=True
                ):
                    if kind == "error":
                        raise pickle.loads(payload)
                    if kind == "part":
                        data, paths = pickle.loads(payload)
                        part = PartRef.from_dict(data)
                        journal_part(journal, part)
                        result.parts.append(part)
                        result.paths_in_part[part.id] = set(paths)
                    else:
                        entry, skipped = pickle.loads(payload)
                        _record_file(report, entry, skipped, old_files, config)
                        result.entries[entry.path] = entry
                        files_back += 1
    except Exception as exc:
        cause = original_error(exc)
        if cause is not None:
            raise type(cause)(str(cause)) from None
        raise
    finally:
        done.set()
        if watcher is not None:
            watcher.join()
    counts = ray.get(counter.snapshot.remote())
    ray.kill(counter)
    report.chunks += counts["chunks"]
    report.chunks_embedded += counts["chunks"] - counts["reused"]
    report.chunks_reused += counts["reused"]
    report.tokens += counts["tokens"]
    if progress is not None:
        from indexer.pipeline import BuildProgress

        progress(
            BuildProgress(
                "embedding", files_total, bytes_total, files_back, bytes_total, counts["embedded"],
                time.perf_counter() - started,
            )
        )  # fmt: skip
    return result


def _record_file(
    report: BuildReport,
    entry: FileEntry,
    skipped: list[SkippedFile],
    old_files: dict[str, FileEntry],
    config: BuildConfig,
) -> None:
    """Count a file the cluster read, as ``_document_chunks`` counts one read locally."""
    report.skipped.extend(skipped)
    if entry.chunks > 0:
        report.files_indexed += 1
        before = old_files.get(entry.path)
        if before is not None and before.status == "indexed":
            report.files_updated += 1
        else:
            report.files_added += 1


def close_journal(handle: Any) -> None:
    with contextlib.suppress(OSError):
        handle.close()


def sync_folder(target: Path) -> None:
    with contextlib.suppress(OSError):
        fsync_path(target)
