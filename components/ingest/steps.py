"""The ingestion job cut into engine steps: plan shards -> ingest each shard -> report (+ prune).

Inputs and outputs are JSON-ready (dicts, lists, strings) so that KFP components and Hera script
steps pass them as parameters without knowing the models behind them.
"""

from __future__ import annotations

import math
from typing import Any

from components.ingest.models import IngestParams, IngestReport
from components.ingest.run import Shard, ingest, prune_source
from components.ingest.sources import open_source
from components.settings import Settings, get_settings

DOCS_PER_SHARD = 200
MAX_SHARDS = 16


def plan_shards(
    params: dict[str, Any],
    docs_per_shard: int = DOCS_PER_SHARD,
    max_shards: int = MAX_SHARDS,
    settings: Settings | None = None,
) -> list[str]:
    """List the source once and cut it into ``I/N`` shards of about ``docs_per_shard``."""
    settings = settings or get_settings()
    source = open_source(IngestParams.model_validate(params).source, settings)
    count = sum(1 for _ in source.list())
    shards = max(1, min(max_shards, math.ceil(count / max(1, docs_per_shard))))
    return [f"{i}/{shards}" for i in range(shards)]


def ingest_shard(
    params: dict[str, Any], shard: str = "0/1", settings: Settings | None = None
) -> dict[str, Any]:
    """Ingest one shard (never prunes: that needs every shard done); returns its report."""
    model = IngestParams.model_validate(params).model_copy(update={"prune": False})
    report = ingest(model, settings or get_settings(), shard=Shard.parse(shard))
    return report.model_dump()


def finish_ingestion(
    params: dict[str, Any], shard_reports: list[dict[str, Any]], settings: Settings | None = None
) -> dict[str, Any]:
    """Merge the shard reports and prune when asked; returns the run's report."""
    model = IngestParams.model_validate(params)
    report = IngestReport.merge([IngestReport.model_validate(r) for r in shard_reports])
    if model.prune:
        from components.ingest.run import PruneRefusedError

        try:
            report.documents.deleted = prune_source(model, settings or get_settings())
        except PruneRefusedError as exc:
            report.prune_error = str(exc)
    return report.model_dump()


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for the Kubeflow UI (documents by outcome, chunks, seconds, rate)."""
    model = IngestReport.model_validate(report)
    metrics: dict[str, float] = {
        f"documents_{name}": float(value) for name, value in model.documents.model_dump().items()
    }
    metrics["chunks"] = float(model.chunks)
    metrics["seconds"] = round(model.seconds, 3)
    metrics["chunks_per_second"] = round(model.chunks_per_second, 3)
    return metrics


def report_markdown(report: dict[str, Any], params: dict[str, Any]) -> str:
    """A Markdown summary of the run, for the Kubeflow UI and Argo's outputs."""
    model = IngestReport.model_validate(report)
    p = IngestParams.model_validate(params)
    lines = [
        "# Document ingestion",
        "",
        f"Source `{p.source}` into collection `{p.collection}`.",
        "",
        "| documents | count |",
        "| --- | ---: |",
        *(f"| {name} | {value} |" for name, value in model.documents.model_dump().items()),
        "",
        f"**{model.chunks}** chunks written in {model.seconds:.1f} s "
        f"({model.chunks_per_second:.1f} chunks/s).",
    ]
    if model.prune_error:
        lines += ["", f"**Prune refused:** {model.prune_error}"]
    if model.failures:
        lines += ["", "## Failures", "", "| document | error |", "| --- | --- |"]
        lines += [f"| `{f.source_uri}` | {f.error.replace('|', '/')} |" for f in model.failures]
    return "\n".join(lines) + "\n"
