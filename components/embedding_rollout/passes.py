"""The rollout's work on collections: ingest passes into the new generation, the gate's
retrievers, generations kept or dropped, and the stored report."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from components.embedding_rollout.models import PassCounts, RolloutReport
from components.ingest.generations import READY, alias_target, drop_generation, generations
from components.ingest.models import DocumentIssue, IngestParams, IngestReport
from components.ingest.retrieval_eval import LabelledQuery, RetrievalMetrics, Retriever, evaluate
from components.storage.milvus import ChunkStore
from components.storage.objects import write_text

if TYPE_CHECKING:
    from components.ingest.embedders import Embedder
    from components.ingest.run import ProgressCallback
    from components.settings import Settings

# Catch-up passes after the bulk one: each ingests again what changed during the one before;
# they stop at the first pass that changes nothing.
CATCH_UP_PASSES = 3


def ingest_pass(
    uri: str,
    collection: str,
    sources: Sequence[str],
    settings: Settings,
    embedder: Embedder,
    progress: ProgressCallback,
    prune: bool,
) -> tuple[PassCounts, list[DocumentIssue]]:
    """Ingest every source into ``collection`` (incrementally, through its manifest) with the
    ingestion job's own code; with ``prune``, documents gone from a source are deleted too."""
    from components.ingest.run import ingest

    reports = [
        ingest(
            IngestParams(source=source, collection=collection, milvus_uri=uri, prune=prune),
            settings,
            embedder=embedder,
            progress=progress,
        )
        for source in sources
    ]
    merged = IngestReport.merge(reports)
    counts = PassCounts(
        **{k: getattr(merged.documents, k) for k in ("new", "changed", "unchanged", "deleted")},
        failed=merged.documents.failed,
        chunks=merged.chunks,
    )
    return counts, merged.failures


def build(
    report: RolloutReport,
    settings: Settings,
    uri: str,
    embedder: Embedder,
    progress: ProgressCallback,
) -> list[DocumentIssue]:
    """The bulk pass into the candidate, then catch-up passes (with prune) until one changes
    nothing: documents changed or removed while the bulk pass ran are caught up before the
    switch. Returns the failures of the last pass."""
    args = (uri, report.candidate, report.sources, settings, embedder, progress)
    report.build, failures = ingest_pass(*args, prune=False)
    for _ in range(CATCH_UP_PASSES):
        counts, failures = ingest_pass(*args, prune=True)
        report.catch_up.append(counts)
        if counts.changes == 0:
            break
    return failures


def collection_retriever(store: ChunkStore, embedder: Embedder) -> Retriever:
    """Dense search of one collection, as ``llmw search`` does it: the hits' source URIs."""

    def retrieve(query: str, k: int) -> list[str]:
        vector = embedder.embed([query])[0]
        return [hit.source_uri for hit in store.search(vector, k)]

    return retrieve


def measure(
    uri: str,
    token: str | None,
    sides: Sequence[tuple[str, Embedder]],
    queries: Sequence[LabelledQuery],
    k: int,
) -> list[RetrievalMetrics]:
    """Each (collection, embedder) side evaluated on the query set, in turn."""
    results = []
    with ExitStack() as stack:
        for name, embedder in sides:
            store = ChunkStore(uri, name, token=token, create=False)
            stack.callback(store.close)
            store.open_existing()
            results.append(evaluate(collection_retriever(store, embedder), queries, k))
    return results


def retain(client: Any, alias: str, keep: int) -> tuple[list[str], list[str]]:
    """Keep the ``keep`` newest ready generations besides the live one, drop the others (and
    any failed or unfinished one); never the one the alias points at. (kept, dropped)."""
    live = alias_target(client, alias)
    others = [g for g in generations(client, alias) if g.name != live]
    ready = sorted((g for g in others if g.state == READY), key=lambda g: -g.number)
    kept = ready[:keep]
    dropped = [g for g in others if g not in kept]
    for generation in dropped:
        drop_generation(client, generation.name)
    return [g.name for g in kept], [g.name for g in dropped]


def store_report(report: RolloutReport, settings: Settings) -> str:
    """Write the report (the gate table with it) under the run data folder, and the gate's
    HTML report with plots next to it; returns the report's URI."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = settings.run_data_uri.rstrip("/")
    uri = f"{base}/embedding-rollout/{report.alias}/{stamp}-{report.candidate}.json"
    report.report_uri = uri
    if report.gate:  # a rerun that only finishes a switch has no gate of its own
        from components.rollout.gate_report import render_gate_report

        report.gate_report_uri = uri.removesuffix(".json") + ".html"
        title = f"Embedding rollout gate: {report.alias}, {report.previous_model} -> {report.model}"
        write_text(report.gate_report_uri, render_gate_report(report.gate, title), settings)
    write_text(uri, json.dumps(report.model_dump(), indent=2) + "\n", settings)
    return uri
