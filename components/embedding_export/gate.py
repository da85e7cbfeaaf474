"""The export quality gate: an exported model against fp32 on a labelled set, side by side.

A gate set is chunks (``{"id", "text"}``) and labelled queries (``{"query", "relevant":
[chunk id…]}``, the format of ``components.ingest.retrieval_eval``). Each side embeds every
chunk once and answers a query with its nearest chunks (exact cosine, in memory: the gate
measures the model, not an index). Rows: recall@5 and MRR@10 (gated: refused when the export
loses more than the thresholds), mean and minimum cosine of each chunk's two vectors, and
chunks/s of each side while embedding the chunks.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.ingest.retrieval_eval import (
    GateResult,
    GateRow,
    LabelledQuery,
    QuerySetError,
    RetrievalMetrics,
    evaluate,
    parse_query_set,
)

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder

SHIPPED = "shipped"


@dataclass(frozen=True)
class GateSet:
    """Chunks to search and queries labelled with the chunk ids that answer them."""

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    queries: tuple[LabelledQuery, ...]


@dataclass(frozen=True)
class SideFigures:
    """One model's figures on a gate set."""

    at_5: RetrievalMetrics
    at_10: RetrievalMetrics
    vectors: Any  # numpy array, one unit vector per chunk
    chunks_per_s: float


def shipped_gate_set() -> GateSet:
    """The labelled set shipped with the project (data/gate_chunks.jsonl, gate_queries.jsonl,
    built by ``python -m components.embedding_export.gate_set``)."""
    data = files("components.embedding_export").joinpath("data")
    return read_gate_set(
        Path(str(data.joinpath("gate_chunks.jsonl"))),
        Path(str(data.joinpath("gate_queries.jsonl"))),
        SHIPPED,
    )


def read_gate_set(chunks: Path, queries: Path, name: str | None = None) -> GateSet:
    """A gate set from its two JSONL files; every relevant id must name a chunk."""
    rows = [json.loads(line) for line in chunks.read_text("utf-8").splitlines() if line.strip()]
    ids = tuple(str(row["id"]) for row in rows)
    labelled = parse_query_set(queries.read_text("utf-8"), str(queries))
    unknown = sorted({r for q in labelled for r in q.relevant} - set(ids))
    if unknown:
        raise QuerySetError(f"{queries}: relevant ids not in {chunks.name}: {unknown[:5]}")
    texts = tuple(str(row["text"]) for row in rows)
    return GateSet(name or str(queries), ids, texts, tuple(labelled))


def measure(embedder: Embedder, gate_set: GateSet) -> SideFigures:
    """Embed the chunks (timed), then run every query at k=5 and k=10."""
    import numpy as np

    embedder.embed(list(gate_set.texts[:2]))  # warm up: a first call allocates its arenas
    started = time.perf_counter()
    vectors = np.asarray(embedder.embed(list(gate_set.texts)), dtype=np.float32)
    speed = len(gate_set.texts) / max(time.perf_counter() - started, 1e-9)
    cache: dict[str, Any] = {}

    def retrieve(query: str, k: int) -> list[str]:
        if query not in cache:
            cache[query] = np.asarray(embedder.embed([query])[0], dtype=np.float32)
        scores = vectors @ cache[query]
        best = np.argsort(-scores)[: k * 4]
        return [gate_set.ids[i] for i in best]

    queries = list(gate_set.queries)
    return SideFigures(
        evaluate(retrieve, queries, k=5), evaluate(retrieve, queries, k=10), vectors, speed
    )


_REFERENCES: weakref.WeakKeyDictionary[Any, dict[GateSet, SideFigures]] = (
    weakref.WeakKeyDictionary()
)


def measure_reference(embedder: Embedder, gate_set: GateSet) -> SideFigures:
    """``measure`` for the fp32 side, once per embedder and gate set (candidates share it)."""
    known = _REFERENCES.setdefault(embedder, {})
    if gate_set not in known:
        known[gate_set] = measure(embedder, gate_set)
    return known[gate_set]


def compare(
    reference: SideFigures,
    candidate: SideFigures,
    max_recall_drop: float,
    max_mrr_drop: float,
    labels: tuple[str, str] = ("fp32", "export"),
) -> GateResult:
    """The side-by-side table; passed when recall@5 and MRR@10 lose at most the thresholds."""
    cosines = (reference.vectors * candidate.vectors).sum(axis=1)
    old5, new5, old10, new10 = reference.at_5, candidate.at_5, reference.at_10, candidate.at_10
    recall_floor, mrr_floor = old5.recall - max_recall_drop, old10.mrr - max_mrr_drop
    rows = (
        GateRow(
            "recall@5",
            old5.recall,
            new5.recall,
            f">= {recall_floor:.3f}",
            new5.recall >= recall_floor - 1e-9,
        ),
        GateRow(
            "MRR@10", old10.mrr, new10.mrr, f">= {mrr_floor:.3f}", new10.mrr >= mrr_floor - 1e-9
        ),
        GateRow("mean cosine to fp32", 1.0, float(cosines.mean()), "", True, 4),
        GateRow("min cosine to fp32", 1.0, float(cosines.min()), "", True, 4),
        GateRow("chunks/s", reference.chunks_per_s, candidate.chunks_per_s, "", True, 1),
    )
    reasons = tuple(
        f"{row.metric} {row.new:.3f} is not {row.limit} (fp32: {row.old:.3f})"
        for row in rows
        if not row.ok
    )
    return GateResult(labels[0], labels[1], 5, rows, old5, new5, reasons)


def figures(result: GateResult) -> dict[str, float]:
    """The manifest's figures from a gate result's rows."""
    names = {
        "recall@5": "recall_at_5",
        "MRR@10": "mrr_at_10",
        "mean cosine to fp32": "mean_cosine",
        "min cosine to fp32": "min_cosine",
        "chunks/s": "chunks_per_s",
    }
    out: dict[str, float] = {}
    for row in result.rows:
        key = names[row.metric]
        out[f"{key}_fp32"], out[key] = row.old, row.new
    return out


def gate_texts(gate_set: GateSet, limit: int) -> Sequence[str]:
    """Up to ``limit`` chunk texts, spread over the set (a default calibration corpus)."""
    step = max(1, len(gate_set.texts) // max(limit, 1))
    return gate_set.texts[::step][:limit]
