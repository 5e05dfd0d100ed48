"""The query model without torch: an ONNX export of the index's model, run by onnxruntime.

Importing torch and sentence-transformers costs seconds, which a terminal query cannot afford.
At build time, while the model is loaded anyway, ``export_query_model`` writes the whole
sentence-embedding pipeline (transformer, pooling, normalisation) as one ONNX graph into the
index folder, beside the tokenizer, and keeps it only if it gives the same vectors as the torch
model on a set of check texts. At query time ``OnnxQueryEmbedder`` needs only onnxruntime,
tokenizers and numpy.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embedding import SentenceTransformerEmbedder, normalize_rows
from indexer.errors import ModelError
from indexer.threads import chosen_threads

QUERY_MODEL_DIR = "query-model"
OPSET = 17
MIN_COSINE = 0.9999  # an export is kept only if every check text embeds this close to torch
# The int8 copy of the query model (``quantized=True``) must give its probe text a vector this
# close to the fp32 export's: on SciFact's 300 test queries the lowest cosine was 0.990, the
# mean 0.994 (a one-letter query in the tests: 0.979).
INT8_MIN_COSINE = 0.98
CHECK_TEXTS = (
    "how do vaccines train the immune system?",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
    "café naïve Zürich — 東京の天気 — Москва",
    "x",
    "",
    " ".join(["the long query repeats words until it passes the model's token limit"] * 60),
)


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_EXPORTS: dict[int, tuple[Path, dict[str, Any]]] = {}  # id of a loaded model -> its export


def add_query_model(embedder: SentenceTransformerEmbedder, directory: Path, file_id: str) -> dict[str, Any]:
    """Place an ONNX export of ``embedder`` in ``directory/query-model`` under ``file_id``.

    A process exports each loaded model once (into a temporary folder) and copies that export
    into every index it builds. Returns the manifest's ``query_model`` facts.
    """
    from indexer.store import file_sha256  # store imports this module

    key = id(embedder._model)
    if key not in _EXPORTS:
        scratch = Path(tempfile.mkdtemp(prefix="semindex-onnx-"))
        atexit.register(shutil.rmtree, scratch, True)
        facts = export_query_model(embedder, scratch, "0" * 16)
        facts["sha256"] = {role: file_sha256(scratch / facts[role]) for role in ("model", "tokenizer")}
        _EXPORTS[key] = scratch, facts
    scratch, facts = _EXPORTS[key]
    folder = directory / QUERY_MODEL_DIR
    folder.mkdir(exist_ok=True)
    placed = dict(facts)
    for role in ("model", "tokenizer"):
        source = scratch / facts[role]
        name = source.name.replace("0" * 16, file_id)
        target = folder / name
        shutil.copyfile(source, target)  # a copy, not a link: damage to one index stays there
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
        placed[role] = f"{QUERY_MODEL_DIR}/{name}"
    return placed


def check_query_model(directory: Path, facts: Any) -> list[str]:
    """Problems with the query model's entry and files (missing, or not the bytes checked)."""
    from indexer.store import file_sha256  # store imports this module

    problem = query_model_problem(facts)
    if problem is not None:
        return [f"manifest: {problem}; export it again with: semindex index FOLDER --onnx"]
    problems = []
    sums: dict[str, Any] = {}
    if isinstance(facts, dict) and isinstance(facts.get("sha256"), dict):
        sums = facts["sha256"]
    for role, name in zip(("model", "tokenizer"), query_model_files(facts), strict=False):
        path = directory / name
        if not path.is_file():
            problems.append(
                f"{path} (the ONNX query model) is missing; queries load the model with torch "
                "until 'semindex index FOLDER' adds it again"
            )
        elif role in sums and file_sha256(path) != sums[role]:
            problems.append(
                f"{path} (the ONNX query model) is damaged: its SHA-256 differs; queries load the "
                "model with torch until 'semindex index FOLDER' exports it again"
            )
    return problems


def export_query_model(
    embedder: SentenceTransformerEmbedder, directory: Path, part_id: str
) -> dict[str, Any]:
    """Write ``query-model/model-<id>.onnx`` and ``tokenizer-<id>.json`` into ``directory``.

    Returns the facts the manifest records (``query_model``). Raises ModelError when the model
    cannot be exported or its export does not reproduce the torch vectors; nothing is left behind.
    """
    import torch

    folder = directory / QUERY_MODEL_DIR
    folder.mkdir(exist_ok=True)
    model_path = folder / f"model-{part_id}.onnx"
    tokenizer_path = folder / f"tokenizer-{part_id}.json"
    st_model = embedder._model
    names = [n for n in st_model.tokenizer.model_input_names if n in _INPUTS]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ModelError(f"model {embedder.name} takes inputs {names}, which the ONNX export does not handle")

    class Pooled(torch.nn.Module):
        """The sentence-transformers pipeline as one module with positional tensor inputs."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = st_model

        def forward(self, *tensors: Any) -> Any:
            features = dict(zip(names, tensors, strict=True))
            return torch.nn.functional.normalize(self.inner(features)["sentence_embedding"], dim=-1)

    sample = st_model.tokenizer(["a sample query", "another one, longer than the first"], padding=True)
    inputs = tuple(torch.tensor(sample[n], dtype=torch.int64) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"embedding": {0: "batch"}}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about constant conditions
            torch.onnx.export(
                Pooled().eval(),
                inputs,
                str(model_path),
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        tokenizer_path.write_text(st_model.tokenizer.backend_tokenizer.to_str(), encoding="utf-8")
        facts: dict[str, Any] = {
            "format": "onnx",
            "model": f"{QUERY_MODEL_DIR}/{model_path.name}",
            "tokenizer": f"{QUERY_MODEL_DIR}/{tokenizer_path.name}",
            "inputs": names,
            "max_seq_length": embedder.max_seq_length,
            "pad_id": int(st_model.tokenizer.pad_token_id or 0),
            "opset": OPSET,
        }
        onnx = OnnxQueryEmbedder(directory, facts, embedder.name, embedder.dimension, embedder.query_prefix)
        ours = onnx.embed_queries(list(CHECK_TEXTS))
        theirs = embedder.embed_queries(list(CHECK_TEXTS))
        cosine = float(np.min(np.sum(ours * theirs, axis=1)))
        if not cosine >= MIN_COSINE:
            raise ModelError(f"the ONNX export of {embedder.name} differs from torch (cosine {cosine:.6f})")
        facts["check"] = {"texts": len(CHECK_TEXTS), "min_cosine": round(cosine, 7)}
        probe = theirs[0]  # every load embeds this again: a damaged file cannot go unnoticed
        facts["probe"] = {"text": CHECK_TEXTS[0], "vector": [round(float(v), 6) for v in probe]}
        facts["bytes"] = model_path.stat().st_size + tokenizer_path.stat().st_size
        return facts
    except Exception as exc:
        for path in (model_path, tokenizer_path):
            with contextlib.suppress(OSError):
                path.unlink()
        if isinstance(exc, ModelError):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot export {embedder.name} to ONNX ({first})") from exc


_NAMES = {
    "model": re.compile(r"query-model/model-[0-9a-f]{16}\.onnx"),
    "tokenizer": re.compile(r"query-model/tokenizer-[0-9a-f]{16}\.json"),
}


def query_model_problem(facts: Any) -> str | None:
    """What is wrong with a manifest's ``query_model`` entry (None: nothing, or no entry)."""
    if facts is None:
        return None
    if not isinstance(facts, dict):
        return "query_model is not an object"
    if facts.get("format") != "onnx":
        return None if facts.get("format") == "none" else "query_model.format is neither onnx nor none"
    for role, pattern in _NAMES.items():
        if not isinstance(facts.get(role), str) or not pattern.fullmatch(facts[role]):
            return f"query_model.{role} does not name a file of the index's query-model folder"
    inputs = facts.get("inputs")
    if not isinstance(inputs, list) or not inputs or any(n not in _INPUTS for n in inputs):
        return f"query_model.inputs must list some of {', '.join(_INPUTS)}"
    for key, least in (("max_seq_length", 1), ("pad_id", 0), ("bytes", 0)):
        value = facts.get(key, least)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            return f"query_model.{key} must be a whole number of at least {least}"
    return None


def query_model_files(facts: Any) -> list[str]:
    """The files (relative to the index folder) a valid ``query_model`` entry names."""
    if query_model_problem(facts) is not None or not isinstance(facts, dict) or facts.get("format") != "onnx":
        return []
    return [str(facts["model"]), str(facts["tokenizer"])]


def quantize_query_model(path: Path) -> bytes:
    """An int8 copy of an ONNX query model, made in memory (2 s for all-MiniLM-L6-v2).

    Dynamic quantisation of the MatMul weights, per output channel: a SciFact query costs 3.2 ms
    of CPU instead of 8.0 on this project's machine, and nDCG@10 goes from 0.6536 to 0.6524
    (dense) and from 0.7085 to 0.7025 (hybrid), measured by ``bench/int8.py``. The document
    vectors stay fp32.
    """
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="semindex-int8-") as scratch:
        target = Path(scratch) / "model-int8.onnx"
        quiet = logging.getLogger().level
        logging.getLogger().setLevel(logging.ERROR)  # it suggests a pre-processing step, as a warning
        try:
            quantize_dynamic(
                str(path), str(target), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul"],
            )  # fmt: skip
        finally:
            logging.getLogger().setLevel(quiet)
        return target.read_bytes()


def default_threads() -> int:
    """Threads for one query: every core, up to 4 (a short query gains nothing beyond). On this
    project's 2 idle cores a SciFact query embeds in 5.1 ms with two threads, 6.6 ms with one;
    beside other busy work one thread does better, which ``--threads 1`` gives."""
    return max(1, min(4, os.cpu_count() or 1))


class OnnxQueryEmbedder:
    """Embeds queries with the index's ONNX export: onnxruntime and tokenizers, no torch."""

    def __init__(
        self,
        directory: Path,
        facts: dict[str, Any],
        name: str,
        dimension: int,
        query_prefix: str,
        threads: int | None = None,
        document_prefix: str = "",
        quantized: bool = False,
        spinning: bool = True,
    ) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.name, self.dimension = name, dimension
        self.query_prefix, self.document_prefix = query_prefix, document_prefix
        self._names = list(facts["inputs"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or chosen_threads() or default_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Threads that wait inside a query spin: a lone query embeds in 4.2 ms instead of 5.1 on
        # 2 cores, for the same CPU. A server turns it off (Index.open(concurrent=True)): beside
        # other requests' work, spinning threads take the CPU those requests need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
        model: str | bytes = str(directory / facts["model"])
        if quantized:
            model = quantize_query_model(directory / facts["model"])
        self.quantized = quantized
        self._session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        tokenizer = Tokenizer.from_file(str(directory / facts["tokenizer"]))
        tokenizer.enable_truncation(int(facts["max_seq_length"]))
        tokenizer.enable_padding(pad_id=int(facts.get("pad_id", 0)))
        self._tokenizer = tokenizer
        probe = facts.get("probe")
        if isinstance(probe, dict) and isinstance(probe.get("text"), str):
            expected = np.asarray(probe.get("vector"), dtype=np.float32)
            got = self._embed([probe["text"]], self.query_prefix, 1)[0]
            least = INT8_MIN_COSINE if quantized else MIN_COSINE
            if expected.shape != got.shape or not float(expected @ got) >= least:
                raise ModelError("it gives other vectors than when it was exported (a damaged file?)")

    def with_query_prefix(self, prefix: str) -> OnnxQueryEmbedder:
        """The same session with another query prefix."""
        other = object.__new__(OnnxQueryEmbedder)
        other.__dict__.update(self.__dict__)
        other.query_prefix = prefix
        return other

    def embed_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for queries, one row per text."""
        return self._embed(texts, self.query_prefix, batch_size)

    def embed_documents(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Unit-length float32 vectors for chunks, one row per text."""
        return self._embed(texts, self.document_prefix, batch_size)

    def _embed(self, texts: Sequence[str], prefix: str, batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = []
        for start in range(0, len(texts), batch_size):
            batch = [prefix + t for t in texts[start : start + batch_size]]
            encodings = self._tokenizer.encode_batch(batch)
            columns = {
                "input_ids": [e.ids for e in encodings],
                "attention_mask": [e.attention_mask for e in encodings],
                "token_type_ids": [e.type_ids for e in encodings],
            }
            feed = {n: np.asarray(columns[n], dtype=np.int64) for n in self._names}
            out.append(self._session.run(["embedding"], feed)[0])
        return normalize_rows(np.concatenate(out))
