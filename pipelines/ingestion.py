"""The ``document-ingestion`` pipeline: plan shards -> ingest each shard (ParallelFor) -> report.

Each component is a few lines: it imports its step from ``components.ingest.steps`` and calls it.
In the cluster the image runs these functions itself (``pipelines.common.make_component``); the
bodies import what they need inside, since kfp.local runs them from their source.

The plan step writes the source's listing to storage and returns one spec per shard,
``{"shard": "I/N", "listing": URI}``; the shard tasks get both fields, the report step the specs
(it prunes against that listing). Each shard's report (bounded: the first failures, the rest
counted) is an Artifact, its counts the artifact's metadata, so the Kubeflow UI shows each
shard's outcome and its lineage; the report step collects them (``dsl.Collected``) from
storage. What the job declares (description, parallelism, the embedding step's placement,
retries, resource profiles) comes from ``components.registry``.

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.cluster.placement import Placement
from components.ingest.models import INGEST_SHARD_STEP, IngestParams
from components.registry import JobSpec, get_job
from components.settings import Settings, get_settings
from pipelines.common import (
    apply_placement,
    apply_resources,
    apply_retry,
    cluster_env,
    default,
    make_component,
    retry_policy,
    shard_parallelism,
)

PIPELINE_NAME = "document-ingestion"


# --- components: thin wrappers over components.ingest.steps -----------------------------------


def plan(source: str, collection: str, milvus_uri: str, prune: bool, traceparent: str = "") -> list:
    """List the source once, write the listing to storage, cut it into shards: a list of
    {"shard": "I/N", "listing": URI}."""
    from components.exit_codes import refusing_bad_input
    from components.ingest.steps import plan_shards
    from components.tracing import join_trace

    join_trace(traceparent)
    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    with refusing_bad_input("ingest plan"):  # exits 2 with one line: "bad input: ..."
        return plan_shards(params)


def ingest_shard(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: bool,
    shard: str,
    listing: str,
    shard_report: Output[Artifact],
    traceparent: str = "",
) -> None:
    """Ingest one shard's slice of the listing into Milvus; its report is the ``shard_report``
    artifact (JSON), its counts the artifact's metadata."""
    import json

    from components.exit_codes import refusing_bad_input
    from components.ingest.steps import ingest_shard as step
    from components.ingest.steps import report_metrics
    from components.tracing import join_trace

    join_trace(traceparent)
    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    with refusing_bad_input("ingest shard"):
        result = step(params, shard, listing)
    with open(shard_report.path, "w", encoding="utf-8") as out:
        json.dump(result, out)
    shard_report.metadata.update({"shard": shard, **report_metrics(result)})


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: bool,
    planned: list,
    shard_reports: Input[list[Artifact]],
    metrics: Output[Metrics],
    summary: Output[Markdown],
    traceparent: str = "",
) -> dict:
    """Merge the shards' report artifacts, prune against the planned listing when asked; log
    Metrics and a Markdown summary; returns the run's report (bounded, without nulls)."""
    import json

    from components.exit_codes import refusing_bad_input
    from components.ingest.steps import finish_ingestion, report_markdown, report_metrics
    from components.tracing import join_trace

    join_trace(traceparent)
    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    reports = []
    for artifact in shard_reports:
        with open(artifact.path, encoding="utf-8") as stored:
            reports.append(json.load(stored))
    with refusing_bad_input("ingest finish"):
        result = finish_ingestion(params, reports, planned)
    for name, value in report_metrics(result).items():
        metrics.log_metric(name, value)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(report_markdown(result, params))
    return {key: value for key, value in result.items() if value is not None}


# --- the pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestionComponents:
    plan: BaseComponent
    ingest_shard: BaseComponent
    report: BaseComponent


def make_components(
    image: str, embedding_image: str | None = None, for_cluster: bool = True
) -> IngestionComponents:
    """The three components on ``image`` (the project's component image, kfp included); the
    embedding step on ``embedding_image`` when given (the project built for a GPU stack)."""
    return IngestionComponents(
        make_component(plan, image, for_cluster),
        make_component(ingest_shard, embedding_image or image, for_cluster),
        make_component(report, image, for_cluster),
    )


def _ingestion_tasks(
    parts: IngestionComponents,
    args: dict[str, Any],
    job: JobSpec,
    settings: Settings,
    for_cluster: bool,
    placement: Placement | None,
) -> dsl.PipelineTask:
    """Plan, the shards' ParallelFor and the report inside the pipeline; returns the report."""
    retries = job.retries
    planned = parts.plan(**args).set_display_name("plan shards")
    # Off: the listing changes while the parameters stay the same.
    planned.set_caching_options(enable_caching=False)
    apply_retry(planned, retry_policy(retries.plan, for_cluster))

    with dsl.ParallelFor(planned.output, parallelism=shard_parallelism(job, for_cluster)) as spec:
        ingested = parts.ingest_shard(**args, shard=spec.shard, listing=spec.listing)
        ingested.set_display_name("ingest shard")
        # Off: what a shard does depends on Milvus's state, which is outside KFP's cache
        # key; a cached report would claim work that was never done again.
        ingested.set_caching_options(enable_caching=False)
        apply_retry(ingested, retry_policy(retries.shard, for_cluster))

    reported = parts.report(
        **args,
        planned=planned.output,
        shard_reports=dsl.Collected(ingested.outputs["shard_report"]),
    )
    reported.set_display_name("report")
    # Off: it prunes Milvus and must report this run's shards, never an earlier run's.
    reported.set_caching_options(enable_caching=False)
    apply_retry(reported, retry_policy(retries.finish, for_cluster))

    if for_cluster:
        cluster_env(planned, settings, milvus=False, run_data=True)
        cluster_env(ingested, settings, milvus=True)
        cluster_env(reported, settings, milvus=True)
        apply_resources(planned, job, "plan", settings)
        apply_resources(ingested, job, INGEST_SHARD_STEP, settings)
        apply_resources(reported, job, "report", settings)
    if placement is not None:
        apply_placement(ingested, placement)
    return reported


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``document-ingestion`` pipeline for ``settings`` (the process's settings by default).

    ``for_cluster=False`` builds the variant that ``kfp.local`` runs: the same components, DAG,
    caching and retries (with a short backoff), shards one at a time (Milvus Lite), and no
    in-cluster environment (the Milvus server URI, GPU variables) so that the user's own
    ``LLMW_*`` settings apply. kfp.local ignores the Kubernetes platform config (secrets, node
    selector, tolerations) in any case.
    """
    settings = settings or get_settings()
    job = get_job(PIPELINE_NAME)
    placement = job.placements(settings)[INGEST_SHARD_STEP] if for_cluster else None
    # The embedding step runs on the placement's image (the project built for that GPU's stack,
    # ROCm on drizzt); the others on the component image.
    parts = make_components(
        settings.component_image,
        placement.image if placement else settings.component_image,
        for_cluster,
    )

    @dsl.pipeline(name=PIPELINE_NAME, description=job.description)
    def document_ingestion(
        source: str,
        collection: str = default(IngestParams, "collection"),
        milvus_uri: str = default(IngestParams, "milvus_uri"),
        prune: bool = default(IngestParams, "prune"),
        traceparent: str = "",
    ) -> dict:
        args = dict(
            source=source, collection=collection, milvus_uri=milvus_uri, prune=prune,
            traceparent=traceparent,
        )  # fmt: skip

        reported = _ingestion_tasks(parts, args, job, settings, for_cluster, placement)
        output: dict = reported.outputs["Output"]
        return output

    return document_ingestion
