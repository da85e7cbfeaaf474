"""The ingestion job cut into engine steps: plan shards -> ingest each shard -> report (+ prune).

Inputs and outputs are JSON-ready (dicts, lists, strings) so that KFP components and Hera script
steps pass them as parameters without knowing the models behind them.

The plan step lists the source once and writes the listing to storage
(``components.ingest.listing``); each shard spec it returns carries the listing's URI, each shard
ingests its slice of that listing, and the report step prunes against it.

Shard reports are bounded (``IngestReport.bounded``: the first failures, the rest counted) and
travel through storage, never as one parameter that grows with the shard count: KFP passes them
as artifacts; for Argo the plan step, given the run's id, names in each spec where its shard
leaves its report (``<run data>/document-ingestion/reports/<run id>/shard-I-of-N.json``), and
the report step reads them from there, as batch inference's merge reads its shards' reports.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from components.ids import Shard
from components.ingest.listing import Listing, read_listing, run_data_base, write_listing
from components.ingest.models import IngestParams, IngestReport
from components.ingest.run import PruneRefusedError, ingest, prune_listing
from components.ingest.sources import open_source
from components.settings import Settings, get_settings
from components.storage.objects import read_text, write_text

# More shards than this only queue for the one embedding GPU.
MAX_SHARDS = 16
REPORTS_FOLDER = "document-ingestion/reports"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def plan_shards(
    params: dict[str, Any], settings: Settings | None = None, run_id: str | None = None
) -> list[dict[str, str]]:
    """List the source once, write the listing to storage, and cut it into ``I/N`` shards of
    about ``settings.ingest_docs_per_shard`` documents (at most MAX_SHARDS, at least one).

    Each shard spec is ``{"shard": "I/N", "listing": "<the listing's URI>"}``; with ``run_id``,
    also ``"report": "<where the shard leaves its report>"`` (``shard_report_uri``).
    """
    settings = settings or get_settings()
    listing = Listing.of(open_source(IngestParams.model_validate(params).source, settings))
    uri = write_listing(listing, settings)
    wanted = math.ceil(len(listing.documents) / settings.ingest_docs_per_shard)
    count = max(1, min(MAX_SHARDS, wanted))
    specs = [{"shard": f"{i}/{count}", "listing": uri} for i in range(count)]
    if run_id is not None:
        for spec in specs:
            spec["report"] = shard_report_uri(run_id, spec["shard"], settings)
    return specs


def shard_report_uri(run_id: str, shard: str, settings: Settings) -> str:
    """Where shard ``I/N`` of run ``run_id`` leaves its report, under the settings' run data."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: expected letters, digits, '.', '_' or '-'")
    parsed = Shard.parse(shard)
    name = f"shard-{parsed.index}-of-{parsed.count}.json"
    return f"{run_data_base(settings)}/{REPORTS_FOLDER}/{run_id}/{name}"


def ingest_shard(
    params: dict[str, Any], shard: str, listing: str, settings: Settings | None = None
) -> dict[str, Any]:
    """Ingest shard ``I/N``'s slice of the listing at ``listing`` (never prunes: that needs every
    shard done); returns its report."""
    settings = settings or get_settings()
    model = IngestParams.model_validate(params).model_copy(update={"prune": False})
    root_uri = open_source(model.source, settings).root_uri
    documents = read_listing(listing, settings, root_uri).slice(Shard.parse(shard))
    return ingest(model, settings, documents=documents).bounded().model_dump()


def store_shard_report(
    report: dict[str, Any], uri: str, settings: Settings | None = None
) -> dict[str, Any]:
    """Leave a shard's report at ``uri`` (its spec's ``report``); returns what the step passes on
    instead: the URI and the counts."""
    write_text(uri, json.dumps(report), settings or get_settings())
    return {"report": uri, "documents": report["documents"], "chunks": report["chunks"]}


def read_shard_reports(
    planned: list[dict[str, str]], settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The reports the ``planned`` shards left where their specs say."""
    settings = settings or get_settings()
    reports = []
    for spec in planned:
        if "report" not in spec:
            raise ValueError(f"shard {spec.get('shard')} names no report: plan with a run id")
        try:
            reports.append(json.loads(read_text(spec["report"], settings)))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"shard {spec['shard']} left no report at {spec['report']}"
            ) from None
    return reports


def finish_ingestion(
    params: dict[str, Any],
    shard_reports: list[dict[str, Any]] | None,
    planned: list[dict[str, str]],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Merge the shard reports (given, or read where the ``planned`` specs say) and, when asked,
    prune against the listing of the ``planned`` shard specs; returns the run's report
    (bounded)."""
    settings = settings or get_settings()
    model = IngestParams.model_validate(params)
    if shard_reports is None:
        shard_reports = read_shard_reports(planned, settings)
    report = IngestReport.merge([IngestReport.model_validate(r) for r in shard_reports])
    if model.prune:
        root_uri = open_source(model.source, settings).root_uri
        listing = read_listing(listing_of(planned), settings, root_uri)
        try:
            report.documents.deleted = prune_listing(model, listing, settings)
        except PruneRefusedError as exc:
            report.prune_error = str(exc)
    return report.bounded().model_dump()


def listing_of(planned: list[dict[str, str]]) -> str:
    """The listing URI the plan step's shard specs carry (one for all of them)."""
    uris = {spec["listing"] for spec in planned}
    if len(uris) != 1:
        raise ValueError(f"the planned shards name {len(uris)} listings, expected one: {planned}")
    return uris.pop()


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
    if model.failures_unlisted:
        lines += ["", f"… and {model.failures_unlisted} more failed documents, not listed."]
    return "\n".join(lines) + "\n"
