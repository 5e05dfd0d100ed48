"""Rendering results for the terminal (plain) and for programs (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

SNIPPET_CHARS = 200


def to_json(data: Any) -> str:
    """One line of JSON, non-ASCII text kept readable."""
    return json.dumps(data, ensure_ascii=False)


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters replaced, safe for a terminal."""
    return text if text.isprintable() else "".join(c if c.isprintable() else "\ufffd" for c in text)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a text on one line, whitespace collapsed, cut at a word near ``limit``."""
    flat = printable(" ".join(text.split()))
    if len(flat) <= limit:
        return flat
    cut = flat.rfind(" ", 0, limit)
    return flat[: cut if cut > limit // 2 else limit] + " …"


def location(path: str, start_line: int, end_line: int, page: int | None = None) -> str:
    """``path:line`` (or ``path#page=N``) so editors and terminals can jump to the hit."""
    path = printable(path)
    if page is not None:
        return f"{path}#page={page}"
    return f"{path}:{start_line}" if start_line == end_line else f"{path}:{start_line}-{end_line}"


def explanation(hit: Any) -> str:
    """Why a hit ranks where it does: its cosine, BM25 score and rank in each ranking."""
    parts = []
    if hit.cosine is not None:
        parts.append(f"cosine {hit.cosine:.4f}" + (f" (#{hit.dense_rank})" if hit.dense_rank else ""))
    if hit.keyword_score is not None:
        rank = f" (#{hit.keyword_rank})" if hit.keyword_rank else ""
        parts.append(f"bm25 {hit.keyword_score:.2f}{rank}" if hit.keyword_score else "no keyword match")
    return f"{hit.mode}: " + ", ".join(parts)


BOLD, RESET = "\033[1m", "\033[0m"


def marked(text: str, spans: Sequence[Sequence[int]], color: bool) -> str:
    """A snippet on one line, with the query's terms in bold on a terminal."""
    if not color or not spans:
        return printable(" ".join(text.split()))
    pieces, position = [], 0
    for start, end in spans:
        pieces += [printable(text[position:start]), BOLD, printable(text[start:end]), RESET]
        position = end
    pieces.append(printable(text[position:]))
    return " ".join("".join(pieces).split())


def format_results(results: Sequence[Any], explain: bool = False, color: bool = False) -> str:
    """Plain rendering: rank, score, ``path:line`` and the best-matching snippet for each hit."""
    if not results:
        return "no results"
    lines = []
    for hit in results:
        if hit.page is not None:
            where = location(hit.path, hit.start_line, hit.end_line, hit.page)
        else:
            where = f"{printable(hit.path)}:{hit.line or hit.start_line}"
        if getattr(hit, "record", None) is not None:
            where += f" (record {printable(hit.record)})"
        lines.append(f"{hit.rank:>3}. {hit.score:.4f}  {where}")
        if explain:
            lines.append(f"     [{explanation(hit)}]")
        lines.append(
            f"     {marked(hit.snippet, hit.highlights, color) if hit.snippet else snippet(hit.text)}"
        )
        if hit.duplicates:
            places = [
                location(d["path"], d["start_line"], d["end_line"], d.get("page")) for d in hit.duplicates
            ]
            more = f" and {len(places) - 3} more" if len(places) > 3 else ""
            lines.append(f"     also in: {', '.join(places[:3])}{more}")
    return "\n".join(lines)


def human_bytes(size: int) -> str:
    """A byte count for people: 1.2 MB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def format_info(info: dict[str, Any]) -> str:
    """Plain rendering of ``semindex info``."""
    chunking = info["chunking"]
    rows = [
        ("index", info["path"]),
        ("model", f"{info['model']} ({info['dimension']} dimensions)"),
        ("documents", str(info["documents"])),
        ("chunks", str(info["chunks"])),
        ("size on disk", human_bytes(info["size_bytes"])),
        ("created", info["created_at"]),
        ("updated", f"{info['updated_at']} (version {info['version']})"),
        ("vector index", _vector_index(info)),
        ("query model", "ONNX (no torch needed)" if info.get("query_model") == "onnx" else "torch"),
        ("chunking", f"{chunking.get('max_tokens')} tokens, overlap {chunking.get('overlap_tokens')}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in rows)


def _vector_index(info: dict[str, Any]) -> str:
    faiss = info.get("faiss") or {}
    parts = f"{info['parts']} part{'s' if info['parts'] != 1 else ''}"
    text = f"{info['faiss_type']} in {parts}"
    if faiss.get("choice"):
        text += f" ({'chosen by size' if faiss['choice'] == 'auto' else 'chosen with --index-type'})"
    if info["faiss_type"] != "flat" and not faiss.get("ann_parts"):
        text += "; every part is under 8,192 chunks, so all are scanned exactly for now"
    elif info["faiss_type"] != "flat" and "recall_at_10" in faiss:
        settings = ", ".join(f"{k}={v}" for k, v in sorted((faiss.get("params") or {}).items()))
        exact = int(info["parts"]) - int(faiss.get("ann_parts", 0))
        text += f"; recall@10 {faiss['recall_at_10']:.3f} against exact search ({settings})"
        if exact:
            text += f"; {exact} small part{'s' if exact != 1 else ''} scanned exactly"
        trained = faiss.get("trained")
        if isinstance(trained, dict):
            text += (
                f"; one IVF training ({trained.get('lists')} lists, from {trained.get('sample'):,} vectors) "
                "shared by every part"
            )
    return text


def shorten(text: str, limit: int = 60) -> str:
    """A text on one line, cut to ``limit`` characters."""
    flat = printable(" ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
