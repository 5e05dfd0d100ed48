"""The ``semindex`` command line: a thin layer over the indexer and search libraries.

Heavy libraries (torch, sentence-transformers, FAISS) are imported inside the commands that
need them, so ``semindex --help`` stays instant.
"""

from __future__ import annotations

import os
import re
import sys
import urllib.parse
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

from indexer import __version__
from indexer.errors import SemindexError

app = typer.Typer(
    name="semindex",
    help="Semantic search over your documents: index a folder, then search it by meaning.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_state = {"debug": False}

# Options shared by several commands, defined once.
IndexOption = Annotated[
    Optional[Path],
    typer.Option(
        "--index", "-i", help="Index folder (default: the nearest .semindex in this folder or its parents)."
    ),
]
ModelOption = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Model name or folder (default: all-MiniLM-L6-v2, shipped offline)."),
]
# search, serve and mcp: the model comes from the index; --model only guards against another.
IndexModelOption = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Refuse the index unless it was built with this model (default: the index's own model).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of text.")]
AddressOption = Annotated[
    Optional[str],
    typer.Option(
        "--address",
        metavar="ADDRESS",
        help="With --engine ray: the Ray cluster to join ('auto': the one `ray start` began here) "
        "[default: a local Ray instance].",
    ),
]
ThreadsOption = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        metavar="N",
        min=1,
        help="Cap CPU threads for torch, FAISS, BLAS and onnxruntime together "
        "(default: $SEMINDEX_THREADS, else each library's own).",
    ),
]
DeviceOption = Annotated[
    Optional[str],
    typer.Option(
        "--device",
        metavar="DEVICE",
        help="Where to embed: cpu, cuda, cuda:1, mps (default: a CUDA GPU when there is one, else cpu).",
    ),
]
IncludeOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--include",
        metavar="PATTERN",
        help="Only index files matching this gitignore-style pattern (repeatable).",
    ),
]
ExcludeOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--exclude",
        metavar="PATTERN",
        help="Leave out files matching this gitignore-style pattern (repeatable).",
    ),
]

Int8Option = Annotated[
    bool,
    typer.Option(
        "--int8",
        help="Embed queries with an int8 copy of the index's ONNX query model, made at start: "
        "0.4x the CPU a query; SciFact nDCG@10 -0.001 dense, -0.006 hybrid (docs/performance.md).",
    ),
]


def _backend(int8: bool) -> str:
    return "onnx-int8" if int8 else "auto"


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def _show_warning(
    message: warnings.WarningMessage | Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: object = None,
) -> None:
    from indexer.embedding import SemindexWarning

    if issubclass(category, SemindexWarning):
        typer.echo(f"Warning: {message}", err=True)
    elif _state["debug"]:
        typer.echo(warnings.formatwarning(str(message), category, filename, lineno), err=True)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn expected errors into one line on stderr and exit code 1; ``--debug`` shows tracebacks."""
    try:
        yield
    except SemindexError as exc:
        if _state["debug"]:
            raise
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"semindex {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Semantic search over your documents: index a folder, then search it by meaning."""
    _state["debug"] = debug
    warnings.showwarning = _show_warning


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="The folder of documents to index.")],
    index_dir: Annotated[
        Optional[Path],
        typer.Option("--index", "-i", help="Where to write the index (default: FOLDER/.semindex)."),
    ] = None,
    model: ModelOption = None,
    chunk_tokens: Annotated[
        Optional[int], typer.Option("--chunk-tokens", help="Tokens per chunk (default: the model's limit).")
    ] = None,
    overlap_tokens: Annotated[
        Optional[int],
        typer.Option("--overlap-tokens", help="Tokens shared by neighbouring chunks [default: 32]."),
    ] = None,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    max_file_size: Annotated[
        str, typer.Option("--max-file-size", help="Skip files larger than this (e.g. 500k, 20M, 1G).")
    ] = "50M",
    records: Annotated[
        Optional[bool],
        typer.Option(
            "--records/--no-records",
            help="Index each record of .jsonl/.json/.parquet/.csv/.tsv files as its own document "
            "(default: when a file looks like records).",
        ),
    ] = None,
    id_field: Annotated[str, typer.Option("--id-field", help="Record field holding its id.")] = "_id",
    text_fields: Annotated[
        str, typer.Option("--text-fields", help="Comma-separated record fields holding its text.")
    ] = "title,text",
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop with an error at the first file that fails to read or parse."),
    ] = False,
    index_type: Annotated[
        Optional[str],
        typer.Option(
            "--index-type",
            metavar="TYPE",
            help="Vector index: flat (exact), hnsw, ivf or ivfpq (approximate, for large indexes; "
            "parts under 8,192 chunks are still scanned exactly), or auto (flat up to 100,000 "
            "chunks, ivf up to 2,000,000, then ivfpq). Later updates keep it (default: the "
            "index's own; auto when new).",
        ),
    ] = None,
    onnx: Annotated[
        Optional[bool],
        typer.Option(
            "--onnx/--no-onnx",
            help="Store an ONNX copy of the model (about 90 MB for the default) so that queries start "
            "in under a second without torch (default: keep the index's choice; on for a new index).",
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Replace an existing index even if built with other settings.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print which files would be added, re-read or removed; write nothing."
        ),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another semindex is writing this index, wait for it.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="local|ray",
            help="local (this process), or ray: read, chunk, embed and write parts as Ray Data stages "
            "on a Ray cluster (needs the ray extra); the index is the same.",
        ),
    ] = "local",
    address: AddressOption = None,
    num_gpus: Annotated[
        Optional[float],
        typer.Option(
            "--num-gpus",
            metavar="N",
            help="With --engine ray: GPUs per embedding actor [default: 1 if the cluster has GPUs, else 0].",
        ),
    ] = None,
    batch_size: Annotated[
        Optional[int],
        typer.Option(
            "--batch-size", metavar="N", help="With --engine ray: chunks per embedding batch [default: 1024]."
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue a build that was interrupted: the parts it finished keep their vectors, "
            "so those chunks are not embedded again (without --resume, those parts are deleted).",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Build the index of FOLDER (in FOLDER/.semindex unless --index says otherwise), or update it.

    An existing index is brought up to date: only new and changed files are read, and only
    chunks whose text is new are embedded.
    """
    _runtime(threads, device)
    with _errors():
        from cli.progress import BuildProgressBar
        from indexer.build import build_index
        from indexer.config import BuildConfig, ChunkingConfig
        from indexer.distributed import RayOptions

        if engine not in ("local", "ray"):
            _fail(f"--engine must be local or ray (got {engine!r})", 2)
        if engine == "local" and (address is not None or num_gpus is not None or batch_size is not None):
            _fail("--address, --num-gpus and --batch-size go with --engine ray", 2)
        try:
            ray_options = RayOptions(address=address, num_gpus=num_gpus, batch_size=batch_size)
        except SemindexError as exc:
            _fail(str(exc), 2)
        if index_type is not None and index_type not in ("auto", "flat", "hnsw", "ivf", "ivfpq"):
            _fail(f"--index-type must be auto, flat, hnsw, ivf or ivfpq (got {index_type!r})", 2)
        chunking = None
        if chunk_tokens is not None or overlap_tokens is not None:
            try:
                chunking = ChunkingConfig(chunk_tokens, 32 if overlap_tokens is None else overlap_tokens)
            except SemindexError as exc:
                _fail(str(exc), 2)
        config = BuildConfig(
            max_file_size=_parse_size(max_file_size, "--max-file-size"),
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            strict=strict,
            records=records,
            id_field=id_field,
            text_fields=tuple(f.strip() for f in text_fields.split(",") if f.strip())
            or _fail("--text-fields needs at least one field name", 2),
            query_model=onnx,
            index_type=index_type,
        )
        if dry_run:
            from indexer.build import plan_update

            _print_plan(plan_update(folder, index_dir, config), as_json)
            return
        with BuildProgressBar(enabled=not quiet and sys.stderr.isatty()) as bar:
            report = build_index(
                folder,
                index_dir,
                model=model,
                chunking=chunking,
                config=config,
                rebuild=rebuild,
                progress=bar,
                wait=wait,
                on_wait=lambda: typer.echo("Another semindex is writing this index; waiting...", err=True),
                engine=engine,
                ray=ray_options,
                resume=resume,
            )
        if as_json:
            from cli.output import to_json

            typer.echo(to_json(report.to_dict()))
        if not quiet:
            _print_build_summary(report)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2, "g": 1024**3, "gb": 1024**3}


def _parse_size(text: str, option: str) -> int:
    """'500k', '20M', '1G' or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        _fail(f"{option} takes a size such as 500k, 20M or 1G (got {text!r})", 2)
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _print_plan(plan: object, as_json: bool) -> None:
    from cli.output import printable, to_json
    from indexer.build import UpdatePlan

    assert isinstance(plan, UpdatePlan)
    if as_json:
        typer.echo(to_json(plan.to_dict()))
        return
    typer.echo(
        f"Plan for {plan.index_dir}: {len(plan.added)} to add, {len(plan.changed)} to re-read, "
        f"{len(plan.removed)} to remove, {len(plan.unchanged)} unchanged (nothing written)"
    )
    for label, paths in (("add", plan.added), ("re-read", plan.changed), ("remove", plan.removed)):
        for path in paths[:20]:
            typer.echo(f"  {label}: {printable(path)}")
        if len(paths) > 20:
            typer.echo(f"  ... and {len(paths) - 20} more to {label} (--json lists all)")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_build_summary(report: object) -> None:
    from indexer.records import BuildReport

    assert isinstance(report, BuildReport)
    if not report.written:
        typer.echo(
            f"{report.index_dir} is up to date: {_count(report.files_indexed, 'file')}, "
            f"{_count(report.chunks, 'chunk')} "
            f"(checked in {report.seconds:.1f} s)",
            err=True,
        )
    elif report.updated:
        typer.echo(
            f"Updated {report.index_dir} in {report.seconds:.1f} s: {report.files_added} added, "
            f"{report.files_updated} updated, {report.files_removed} removed, "
            f"{report.files_unchanged} unchanged; chunks: {report.chunks_embedded} embedded, "
            f"{report.chunks_reused} reused, {report.chunks} in all",
            err=True,
        )
    else:
        rate = report.chunks / report.pipeline_seconds if report.pipeline_seconds else 0.0
        typer.echo(
            f"Indexed {_count(report.files_indexed, 'file')}, {_count(report.chunks, 'chunk')} "
            f"in {report.seconds:.1f} s "
            f"({report.model_seconds:.1f} s loading the model, then {rate:.1f} chunks/s) "
            f"into {report.index_dir}",
            err=True,
        )
    if report.emptied:
        typer.echo(
            f"Warning: the folder holds no indexable files now, so {report.index_dir} is empty "
            "(searches find nothing until documents come back)",
            err=True,
        )
    if report.skipped:
        failed = sum(s.failed for s in report.skipped)
        label = f"Skipped {len(report.skipped)}" + (f" ({failed} failed to read)" if failed else "")
        typer.echo(f"{label}:", err=True)
        from cli.output import printable

        for skipped in report.skipped[:20]:
            typer.echo(f"  {printable(skipped.path)}: {printable(skipped.reason)}", err=True)
        if len(report.skipped) > 20:
            typer.echo(f"  ... and {len(report.skipped) - 20} more (--json lists all)", err=True)


def _read_queries(source: str) -> list[str]:
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source).expanduser()
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            _fail(f"queries file {path} does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            _fail(f"cannot read queries file {path}: {exc}")
    queries = [line.strip() for line in text.splitlines() if line.strip()]
    if not queries:
        _fail(f"no queries in {'standard input' if source == '-' else source}; write one query a line")
    return queries


@app.command()
def search(
    query: Annotated[Optional[str], typer.Argument(help="What to search for, in your own words.")] = None,
    queries: Annotated[
        Optional[str],
        typer.Option(
            "--queries", help="File of queries, one a line ('-' reads stdin); prints JSON Lines with --json."
        ),
    ] = None,
    index_dir: IndexOption = None,
    k: Annotated[int, typer.Option("-k", "--top", help="How many results to return.")] = 10,
    mode: Annotated[
        Optional[str],
        typer.Option(
            "--mode",
            help="hybrid (meaning and keywords fused; the default), dense (meaning only: cosine) "
            "or keyword (BM25 only).",
        ),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each hit's cosine, BM25 score and rank in each ranking.")
    ] = False,
    per_doc: Annotated[
        int, typer.Option("--per-doc", help="Chunks shown per document; -k counts documents.")
    ] = 1,
    chunks: Annotated[
        bool, typer.Option("--chunks", help="Raw chunk hits instead of grouping by document.")
    ] = False,
    path: Annotated[
        Optional[list[str]],
        typer.Option(
            "--path",
            metavar="PATTERN",
            help="Only documents matching this gitignore-style pattern (repeatable).",
        ),
    ] = None,
    ext: Annotated[
        Optional[list[str]],
        typer.Option(
            "--ext", metavar="EXT", help="Only documents with this extension, e.g. md (repeatable)."
        ),
    ] = None,
    modified_after: Annotated[
        Optional[str],
        typer.Option(
            "--modified-after", metavar="DATE", help="Only documents modified since, e.g. 2024-05-01."
        ),
    ] = None,
    modified_before: Annotated[
        Optional[str],
        typer.Option("--modified-before", metavar="DATE", help="Only documents modified before this date."),
    ] = None,
    min_score: Annotated[
        Optional[float],
        typer.Option("--min-score", help="Drop hits below this cosine (BM25 score in keyword mode)."),
    ] = None,
    model: IndexModelOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            metavar="local|ray",
            help="local, or ray: the index's parts are held by Ray actors (one per CPU Ray offers) "
            "and dense search fans out to them; needs the ray extra.",
        ),
    ] = "local",
    address: AddressOption = None,
    as_json: JsonOption = False,
) -> None:
    """Search an index by meaning and keywords and print the best matches, best first.

    Exits 1 when a QUERY finds nothing (like grep), 0 otherwise.
    """
    if (query is None) == (queries is None):
        _fail("give either a QUERY or --queries FILE (see semindex search --help)", 2)
    if k < 1:
        _fail(f"-k must be at least 1 (got {k})", 2)
    if mode is not None and mode not in ("hybrid", "dense", "keyword"):
        _fail(f"--mode must be hybrid, dense or keyword (got {mode!r})", 2)
    if per_doc < 1:
        _fail(f"--per-doc must be at least 1 (got {per_doc})", 2)
    if engine not in ("local", "ray"):
        _fail(f"--engine must be local or ray (got {engine!r})", 2)
    for option, value in (("--modified-after", modified_after), ("--modified-before", modified_before)):
        if value is not None:
            from search.filters import parse_moment

            try:
                parse_moment(value, option)
            except SemindexError as exc:
                _fail(str(exc), 2)
    found_any = True
    _runtime(threads, device)
    _without_pandas()
    with _errors():
        from cli.output import format_results, to_json
        from search import Index
        from search.index import check_query

        texts = [query] if query is not None else _read_queries(queries or "-")
        for number, text in enumerate(texts, start=1):  # all of them, before any output
            check_query(text, number if queries is not None else None)
        # One query: map the ANN files rather than read them (a cold query reads what it probes).
        opened = Index.open(index_dir, model=model, engine=engine, address=address, mapped=len(texts) == 1)
        batch = 64
        for start in range(0, len(texts), batch):
            group = texts[start : start + batch]
            answers = opened.search_many(
                group,
                k=k,
                mode=mode,
                per_doc=None if chunks else per_doc,
                path=path,
                ext=ext,
                modified_after=modified_after,
                modified_before=modified_before,
                min_score=min_score,
            )
            for text, results in zip(group, answers, strict=True):
                found_any = found_any and bool(results)
                if as_json:
                    typer.echo(to_json({"query": text, "results": [r.to_dict() for r in results]}))
                else:
                    if queries is not None:
                        typer.echo(f"== {text}")
                    typer.echo(format_results(results, explain=explain, color=sys.stdout.isatty()))
    if query is not None and not found_any:
        raise typer.Exit(1)


@app.command()
def info(index_dir: IndexOption = None, as_json: JsonOption = False) -> None:
    """Show an index's model, dimensions, counts, size on disk and creation time."""
    with _errors():
        from cli.output import format_info, to_json
        from search import Index

        details = Index.open(index_dir).info().to_dict()
        typer.echo(to_json(details) if as_json else format_info(details))


@app.command()
def verify(index_dir: IndexOption = None, as_json: JsonOption = False) -> None:
    """Check every file of an index in full: checksums, rows, vectors, file table (exit 1 on damage)."""
    with _errors():
        from cli.output import human_bytes, printable, to_json
        from indexer.verify import verify_index
        from search.index import index_location

        report = verify_index(index_location(index_dir))
        if as_json:
            typer.echo(to_json(report.to_dict()))
        else:
            for note in report.notes:
                typer.echo(f"Note: {printable(note)}", err=True)
            for problem in report.problems:
                typer.echo(f"Problem: {printable(problem)}", err=True)
        if not report.ok:
            count = len(report.problems)
            repairable = all("'semindex index FOLDER'" in problem for problem in report.problems)
            remedy = (
                "repair it with: semindex index FOLDER (nothing is embedded again)"
                if repairable
                else "rebuild it with: semindex index FOLDER --rebuild"
            )
            _fail(f"{report.index_dir} is damaged ({count} problem{'s' if count != 1 else ''}); {remedy}")
        if not as_json:
            typer.echo(
                f"{report.index_dir} is sound: {report.parts} part(s), {report.chunks} chunks, "
                f"{report.files} files, {human_bytes(report.bytes_read)} checked"
            )


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="The folder of documents to keep indexed.")],
    index_dir: Annotated[
        Optional[Path],
        typer.Option("--index", "-i", help="Where the index lives (default: FOLDER/.semindex)."),
    ] = None,
    model: ModelOption = None,
    include: IncludeOption = None,
    exclude: ExcludeOption = None,
    debounce: Annotated[
        float, typer.Option("--debounce", help="Seconds the folder must be quiet before an update.")
    ] = 1.0,
    poll: Annotated[
        bool, typer.Option("--poll", help="Poll for changes (for network drives where events do not arrive).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Keep the index of FOLDER up to date as files change, until Ctrl-C (one update per batch of changes)."""
    if debounce < 0:
        _fail(f"--debounce must be 0 or more seconds (got {debounce})", 2)
    _runtime(threads, device)
    with _errors():
        from cli.output import printable, to_json
        from indexer.records import BuildReport
        from indexer.watch import watch_folder

        updates = 0

        def on_update(report: BuildReport) -> None:
            nonlocal updates
            updates += 1
            if as_json:
                typer.echo(to_json(report.to_dict()))
            elif not quiet and (report.written or updates == 1):
                _print_build_summary(report)

        def on_error(exc: SemindexError) -> None:
            typer.echo(f"Error: {printable(str(exc))} (still watching)", err=True)

        if not folder.expanduser().is_dir():
            _fail(f"{folder} is not a folder; pass the folder that holds your documents")
        if not quiet and not as_json:
            typer.echo(f"Watching {folder} (Ctrl-C stops)", err=True)
        watch_folder(
            folder,
            index_dir,
            model=model,
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            debounce_ms=int(debounce * 1000),
            on_update=on_update,
            on_error=on_error,
            force_polling=True if poll else None,
        )
        if not quiet and not as_json:
            typer.echo("Stopped watching.", err=True)


@app.command()
def serve(
    index_dir: IndexOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (default: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8765,
    token: Annotated[
        Optional[str],
        typer.Option(
            "--token",
            metavar="SECRET",
            envvar="SEMINDEX_TOKEN",
            help="Require 'Authorization: Bearer SECRET' on every API call (or set $SEMINDEX_TOKEN, "
            "which other users cannot read in the process list).",
        ),
    ] = None,
    model: IndexModelOption = None,
    threads: ThreadsOption = None,
    int8: Int8Option = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Worker processes, each with the index and model loaded (Python runs one thread at "
            "a time per process; on 2 cores, 2 workers answered up to 1.3x the queries/s of one).",
        ),
    ] = 1,
) -> None:
    """Serve an index over HTTP: a search page at /, GET/POST /api/search, /api/info, /api/health,
    /api/documents/PATH, OpenAPI at /docs.

    The model and index are loaded once; a new version written by `semindex index` or `watch`
    is picked up without a restart.
    """
    _runtime(threads)
    with _errors():
        try:
            import uvicorn

            from server.app import LOCAL_HOSTS, create_app
        except ImportError as exc:
            _fail(f"cannot import the server ({exc}); reinstall semindex with its dependencies")

        if token is not None and not re.fullmatch(r"[\x21-\x7e]+", token):
            _fail("--token must be printable ASCII without spaces (browsers send nothing else)", 2)
        host = host.lower() if host.lower() == "localhost" else host
        loopback = host in LOCAL_HOSTS
        # On a loopback address only local names are accepted in the Host header: a web page
        # whose name was re-pointed at 127.0.0.1 (DNS rebinding) cannot read the index.
        hosts = list(LOCAL_HOSTS) if loopback else None if host in ("0.0.0.0", "::") else [*LOCAL_HOSTS, host]
        if not loopback:
            typer.echo(
                f"Warning: listening on {host}: other machines can reach this index"
                + ("" if token else "; consider --token"),
                err=True,
            )
        shown = f"[{host}]" if ":" in host else host
        page = f"http://{shown}:{port}/" + (f"#token={urllib.parse.quote(token)}" if token else "")
        served: dict[str, Any] = {"host": host, "port": port, "log_level": "warning", "access_log": False}
        if workers == 1:
            application = create_app(index_dir, token=token, model=model, backend=_backend(int8), hosts=hosts)
        else:
            import json

            from indexer.threads import chosen_threads
            from search import Index
            from search.index import index_location
            from server.app import WORKER_CONFIG

            location = index_location(index_dir)
            Index.open(location, model=model)  # a missing or damaged index fails here, in one line
            os.environ[WORKER_CONFIG] = json.dumps(
                {
                    "index": str(location),
                    "token": token,
                    "model": model,
                    "backend": _backend(int8),
                    "threads": chosen_threads() or max(1, (os.cpu_count() or 1) // workers),
                    "hosts": hosts,
                }
            )
            served |= {"factory": True, "workers": workers}
        many = f" with {workers} workers" if workers > 1 else ""
        typer.echo(f"Serving on {page}{many} (search page; API docs at /docs; Ctrl-C stops)", err=True)
        uvicorn.run(application if workers == 1 else "server.app:app_from_environment", **served)


@app.command()
def mcp(
    index_dir: IndexOption = None,
    model: IndexModelOption = None,
    threads: ThreadsOption = None,
    int8: Int8Option = False,
) -> None:
    """Serve an index to AI assistants over the Model Context Protocol (stdio): tools search, info, document.

    Point an assistant's MCP settings at the command `semindex mcp --index DIR`. The index and
    model are loaded once; a new version on disk is picked up between calls.
    """
    _runtime(threads)
    with _errors():
        try:
            from server.assistant import create_mcp_server
        except ImportError as exc:
            _fail(f"cannot import the MCP server ({exc}); reinstall semindex with its dependencies")
        import logging

        logging.getLogger("mcp").setLevel(logging.WARNING)  # stderr stays quiet; stdout is the protocol
        create_mcp_server(index_dir, model=model, backend=_backend(int8)).run("stdio")


@app.command(name="eval")
def eval_command(
    folder: Annotated[
        Path, typer.Argument(help="A BEIR folder: corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv.")
    ],
    split: Annotated[str, typer.Option("--split", help="Which qrels/SPLIT.tsv to score.")] = "test",
    mode: Annotated[
        Optional[list[str]],
        typer.Option(
            "--mode", help="Mode to score: keyword, dense or hybrid (repeatable; default: all three)."
        ),
    ] = None,
    index_dir: Annotated[
        Optional[Path],
        typer.Option("--index", "-i", help="Where to keep the corpus's index (default: FOLDER/.semindex)."),
    ] = None,
    model: ModelOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score retrieval on judged data: index a BEIR corpus (or reuse its index) and print
    nDCG@10, MRR@10 and Recall@100 for each mode side by side."""
    modes = list(dict.fromkeys(mode or ["keyword", "dense", "hybrid"]))
    for name in modes:
        if name not in ("hybrid", "dense", "keyword"):
            _fail(f"--mode must be hybrid, dense or keyword (got {name!r})", 2)
    _runtime(threads, device)
    with _errors():
        from cli.output import to_json
        from cli.progress import BuildProgressBar
        from search.evaluate import evaluate_beir

        with BuildProgressBar(enabled=not quiet and sys.stderr.isatty()) as bar:
            report = evaluate_beir(folder, index_dir, split=split, modes=modes, model=model, progress=bar)
        if as_json:
            typer.echo(to_json(report.to_dict()))
            return
        typer.echo(f"{report.queries} queries of split {report.split!r}, index {report.index_dir}")
        typer.echo(f"{'mode':<9} {'nDCG@10':>8} {'MRR@10':>8} {'Recall@100':>11} {'ms/query':>9}")
        for name, values in report.metrics.items():
            per_query = 1000 * report.seconds[name] / max(1, report.queries)
            typer.echo(
                f"{name:<9} {values['ndcg@10']:>8.4f} {values['mrr@10']:>8.4f} "
                f"{values['recall@100']:>11.4f} {per_query:>9.1f}"
            )


@app.command()
def similarity(
    texts: Annotated[list[str], typer.Argument(help="Two or more texts to compare.")],
    model: ModelOption = None,
    threads: ThreadsOption = None,
    device: DeviceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the cosine similarity of each pair of TEXTS (pooled, normalised embeddings)."""
    if len(texts) < 2:
        _fail("give at least two texts to compare", 2)
    _runtime(threads, device)
    with _errors():
        from cli.output import shorten, to_json
        from indexer.embedding import load_embedder
        from search.similarity import similarity_matrix

        embedder = load_embedder(model)
        matrix = similarity_matrix(texts, embedder=embedder)
        if as_json:
            rounded = [[round(float(v), 6) for v in row] for row in matrix]
            typer.echo(to_json({"model": embedder.name, "texts": texts, "matrix": rounded}))
            return
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                typer.echo(f"{matrix[i, j]:.4f}  {shorten(texts[i])!r}  ~  {shorten(texts[j])!r}")


def _runtime(threads: int | None, device: str | None = None) -> None:
    """Apply --threads (else $SEMINDEX_THREADS) and --device for this process."""
    from indexer.threads import set_threads

    source = "--threads"
    if threads is None and os.environ.get("SEMINDEX_THREADS"):
        source = "SEMINDEX_THREADS"
        try:
            threads = int(os.environ["SEMINDEX_THREADS"])
        except ValueError:
            _fail(f"SEMINDEX_THREADS must be a whole number (got {os.environ['SEMINDEX_THREADS']!r})", 2)
    most = 4 * (os.cpu_count() or 1)
    if threads is not None and not 1 <= threads <= most:
        _fail(f"{source} must be from 1 to {most} (4 per core on this machine; got {threads})", 2)
    set_threads(threads)
    if device is not None:
        from indexer.embedding import set_default_device

        if not re.fullmatch(r"cpu|cuda(:\d+)?|mps|xpu(:\d+)?", device):
            _fail(f"--device must be cpu, cuda, cuda:N, mps or xpu (got {device!r})", 2)

        set_default_device(device)


def _without_pandas() -> None:
    """Keep pandas out of a query's process (pyarrow would import it, for 0.2 s, and never use
    it); loading a torch model lets it back in first."""
    from indexer.imports import keep_out

    keep_out("pandas")


def run() -> None:
    """Console-script entry point: usage errors, too, are one line (and exit 2)."""
    # The click that typer uses (its own copy in recent versions): found through its classes.
    usage_error: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    click_error: type[Exception] = next(
        c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
    )
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `semindex`: the help
            typer.echo(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "semindex"
        typer.echo(f"Error: {exc.format_message()} (see: {command} --help)", err=True)  # type: ignore[attr-defined]
        sys.exit(2)
    except click_error as exc:
        typer.echo(f"Error: {exc.format_message()}", err=True)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 1))
    except typer.Abort:
        typer.echo("Error: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
