"""Retrieval quality over a labelled query set: recall@k, MRR@k and query latency, and a gate
that compares two retrievers side by side against thresholds.

A query set is JSONL, one object per line: ``{"query": "...", "relevant": ["file:///…", …]}``,
where ``relevant`` lists the source URIs (as ``llmw search --json`` prints them) of the documents
that answer the query. A plain path in ``relevant`` is read relative to the query file's folder.

A retriever is any callable ``(query, k) -> source URIs of its hits, best first``. Hits are
chunks, so a document may come several times: it counts once, at its best rank, and the
documents are cut to the first ``k``. recall@k is the share of a query's relevant documents in
them, MRR@k the mean of 1/rank of the first relevant one (0 when none); latency is the wall time
of each call (embedding the query and searching), in milliseconds.

Used by the embedding rollout's gate (``components.embedding_rollout``); nothing here knows
Milvus or a model.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Retriever = Callable[[str, int], Sequence[str]]


class QuerySetError(ValueError):
    """A query set that can't be used; the message names the file and the line."""


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    relevant: tuple[str, ...]


def parse_query_set(
    text: str, name: str = "query set", base: Path | None = None
) -> list[LabelledQuery]:
    """The queries of a JSONL query set (blank lines ignored); refuses a malformed line, a
    missing or empty ``query`` or ``relevant``, and an empty set."""
    queries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{name}, line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuerySetError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise QuerySetError(f"{where}: expected an object with query and relevant")
        query, relevant = row.get("query"), row.get("relevant")
        if not isinstance(query, str) or not query.strip():
            raise QuerySetError(f"{where}: 'query' must be a non-empty string")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(r, str) and r.strip() for r in relevant)
        ):
            raise QuerySetError(f"{where}: 'relevant' must be a non-empty list of source URIs")
        uris = tuple(dict.fromkeys(_source_uri(r, base) for r in relevant))
        queries.append(LabelledQuery(query=query, relevant=uris))
    if not queries:
        raise QuerySetError(f"{name} holds no queries")
    return queries


def read_query_set(path: str | Path) -> list[LabelledQuery]:
    """Read a JSONL query set from a local file."""
    file = Path(path)
    if not file.is_file():
        raise QuerySetError(f"query set {path}: no such file")
    return parse_query_set(file.read_text(encoding="utf-8"), str(path), file.resolve().parent)


def _source_uri(value: str, base: Path | None) -> str:
    if "://" in value or base is None:
        return value
    return (base / value).resolve().as_uri()


@dataclass(frozen=True)
class QueryOutcome:
    query: str
    retrieved: tuple[str, ...]  # distinct documents, best first, at most k
    recall: float
    reciprocal_rank: float
    latency_ms: float


@dataclass(frozen=True)
class RetrievalMetrics:
    k: int
    queries: int
    recall: float
    mrr: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_mean_ms: float
    outcomes: tuple[QueryOutcome, ...] = ()

    def to_json(self, with_queries: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_queries:
            data.pop("outcomes")
        return data


def score(query: LabelledQuery, hits: Sequence[str], k: int, latency_ms: float) -> QueryOutcome:
    """One query's recall@k and reciprocal rank from its hits' source URIs."""
    retrieved = tuple(dict.fromkeys(hits))[:k]
    relevant = set(query.relevant)
    found = relevant.intersection(retrieved)
    rank = next((i for i, uri in enumerate(retrieved, 1) if uri in relevant), None)
    return QueryOutcome(
        query=query.query,
        retrieved=retrieved,
        recall=len(found) / len(relevant),
        reciprocal_rank=1.0 / rank if rank else 0.0,
        latency_ms=latency_ms,
    )


def evaluate(
    retriever: Retriever, queries: Sequence[LabelledQuery], k: int = 5, warmup: bool = True
) -> RetrievalMetrics:
    """Run every query through ``retriever`` once and measure it (after one untimed warm-up
    call, so that loading a model or a collection is not counted as query latency)."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if not queries:
        raise ValueError("no queries to evaluate")
    if warmup:
        retriever(queries[0].query, k)
    outcomes = []
    for query in queries:
        started = time.perf_counter()
        hits = retriever(query.query, k)
        elapsed_ms = (time.perf_counter() - started) * 1000
        outcomes.append(score(query, hits, k, elapsed_ms))
    latencies = sorted(o.latency_ms for o in outcomes)
    return RetrievalMetrics(
        k=k,
        queries=len(outcomes),
        recall=sum(o.recall for o in outcomes) / len(outcomes),
        mrr=sum(o.reciprocal_rank for o in outcomes) / len(outcomes),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        latency_mean_ms=sum(latencies) / len(latencies),
        outcomes=tuple(outcomes),
    )


def percentile(ordered: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


@dataclass(frozen=True)
class GateThresholds:
    """How much worse the new side may be: absolute drops in recall@k and MRR@k, and an
    optional ceiling on its p95 query latency."""

    max_recall_drop: float = 0.05
    max_mrr_drop: float = 0.05
    max_p95_latency_ms: float | None = None


@dataclass(frozen=True)
class GateRow:
    metric: str
    old: float
    new: float
    limit: str  # what the new value had to be, in words (">= 0.850"); "" when not gated
    ok: bool
    digits: int = 3  # decimals shown in the table

    @property
    def change(self) -> float:
        return self.new - self.old


@dataclass(frozen=True)
class GateResult:
    """Old and new side by side; passed when every gated row is ok."""

    old_label: str
    new_label: str
    k: int
    rows: tuple[GateRow, ...]
    old: RetrievalMetrics
    new: RetrievalMetrics
    reasons: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(row.ok for row in self.rows)

    def table(self) -> list[list[str]]:
        """Header and rows as text: metric, old, new, change, limit, ok."""
        header = ["metric", self.old_label, self.new_label, "change", "limit", "ok"]
        lines = [header]
        for row in self.rows:
            digits = row.digits
            lines.append(
                [
                    row.metric,
                    f"{row.old:.{digits}f}",
                    f"{row.new:.{digits}f}",
                    f"{row.change:+.{digits}f}",
                    row.limit or "-",
                    "yes" if row.ok else "NO",
                ]
            )
        return lines

    def markdown(self) -> str:
        lines = self.table()
        out = ["| " + " | ".join(lines[0]) + " |", "|" + " --- |" * len(lines[0])]
        out += ["| " + " | ".join(cells) + " |" for cells in lines[1:]]
        verdict = "passed" if self.passed else "FAILED: " + "; ".join(self.reasons)
        return "\n".join([*out, "", f"Gate {verdict}"]) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "k": self.k,
            "old": {"label": self.old_label, **self.old.to_json(), **_latencies(self.old)},
            "new": {"label": self.new_label, **self.new.to_json(), **_latencies(self.new)},
            "rows": [{**asdict(row), "change": row.change} for row in self.rows],
            "reasons": list(self.reasons),
            "table": self.table(),
        }


def _latencies(metrics: RetrievalMetrics) -> dict[str, list[float]]:
    """Each query's latency, for the gate report's distribution plots."""
    return {"latencies_ms": [round(o.latency_ms, 3) for o in metrics.outcomes]}


def gate(
    old: RetrievalMetrics,
    new: RetrievalMetrics,
    thresholds: GateThresholds,
    old_label: str = "old",
    new_label: str = "new",
    checks: Sequence[GateRow] = (),
) -> GateResult:
    """Compare ``new`` with ``old`` against ``thresholds``; ``checks`` are the caller's other
    gated rows (the rollout's documents that failed to ingest, say)."""
    if old.k != new.k:
        raise ValueError(f"compare metrics at the same k (old {old.k}, new {new.k})")
    k, eps = old.k, 1e-9
    recall_floor = old.recall - thresholds.max_recall_drop
    mrr_floor = old.mrr - thresholds.max_mrr_drop
    ceiling = thresholds.max_p95_latency_ms
    rows = [
        GateRow(
            f"recall@{k}",
            old.recall,
            new.recall,
            f">= {recall_floor:.3f}",
            new.recall >= recall_floor - eps,
        ),
        GateRow(f"MRR@{k}", old.mrr, new.mrr, f">= {mrr_floor:.3f}", new.mrr >= mrr_floor - eps),
        GateRow("latency p50 ms", old.latency_p50_ms, new.latency_p50_ms, "", True, 1),
        GateRow(
            "latency p95 ms",
            old.latency_p95_ms,
            new.latency_p95_ms,
            f"<= {ceiling:.1f}" if ceiling is not None else "",
            ceiling is None or new.latency_p95_ms <= ceiling,
            1,
        ),
        *checks,
    ]
    reasons = tuple(
        f"{row.metric} {row.new:.{row.digits}f} is not {row.limit} ({old_label}: "
        f"{row.old:.{row.digits}f})"
        for row in rows
        if not row.ok
    )
    return GateResult(old_label, new_label, k, tuple(rows), old, new, reasons)
