"""The ``document-ingestion`` pipeline: plan shards -> ingest each shard (ParallelFor) -> report.

Each component is a few lines: it imports its step from ``components.ingest.steps`` and calls it.
KFP copies a component function's source verbatim into the compiled YAML and runs it in the
component image, where this project is installed, so the bodies import what they need inside.

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.cluster.inventory import load_inventory
from components.cluster.placement import GpuNeed, Placement, place
from components.settings import MILVUS_SECRET_KEYS, S3_SECRET_KEYS, Settings, get_settings

PIPELINE_NAME = "document-ingestion"
PIPELINE_DESCRIPTION = (
    "Documents from a folder or s3:// prefix, partitioned and chunked with unstructured, "
    "embedded with sentence-transformers, upserted into Milvus."
)
# How many shards ingest at once. Every shard asks for the embedding GPU, so the scheduler
# queues what the GPU cannot hold; more would only add pending pods.
SHARD_PARALLELISM = 4
# Locally one at a time: Milvus Lite admits one process per database file (a file lock).
LOCAL_SHARD_PARALLELISM = 1
# Secret data keys follow the environment variable names they feed (see Settings).
EMBEDDING_FRAMEWORK = "sentence-transformers"


# --- components: thin wrappers over components.ingest.steps -----------------------------------


def plan(source: str, collection: str, milvus_uri: str, prune: bool) -> list[str]:
    """List the source once and cut it into shards ("I/N")."""
    from components.ingest.steps import plan_shards

    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    return plan_shards(params)


def ingest_shard(source: str, collection: str, milvus_uri: str, prune: bool, shard: str) -> dict:
    """Ingest one shard into Milvus; returns its report (without nulls, which KFP can't pass)."""
    from components.ingest.steps import ingest_shard as step

    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    return {key: value for key, value in step(params, shard).items() if value is not None}


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: bool,
    shard_reports: list,
    metrics: Output[Metrics],
    summary: Output[Markdown],
) -> dict:
    """Merge the shard reports, prune when asked; log Metrics and a Markdown summary."""
    from components.ingest.steps import finish_ingestion, report_markdown, report_metrics

    params = dict(source=source, collection=collection, milvus_uri=milvus_uri or None, prune=prune)
    result = finish_ingestion(params, shard_reports)
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


def make_components(image: str, embedding_image: str | None = None) -> IngestionComponents:
    """The three components on ``image`` (the project's component image, kfp included); the
    embedding step on ``embedding_image`` when given (the project built for a GPU stack)."""

    def wrap(func: Callable[..., Any], base_image: str) -> BaseComponent:
        # install_kfp_package=False: the image has kfp; no pip at run time, nothing downloaded.
        component: BaseComponent = dsl.component(
            func, base_image=base_image, install_kfp_package=False
        )
        return component

    return IngestionComponents(
        wrap(plan, image), wrap(ingest_shard, embedding_image or image), wrap(report, image)
    )


@dataclass(frozen=True)
class RetryPolicy:
    """``set_retry`` arguments: attempts after the first, and exponential backoff."""

    retries: int
    backoff: str
    factor: float = 2.0
    max_backoff: str = "3600s"


# In the cluster a failed listing or shard usually means MinIO, Milvus or the GPU node blinked:
# wait before retrying. Reruns are safe: ids are deterministic and a shard converges to the same
# rows after a crash. Locally the same retries run with a short backoff.
CLUSTER_RETRY = {
    "plan": RetryPolicy(3, "30s", 2.0, "600s"),
    "ingest": RetryPolicy(3, "60s", 2.0, "1800s"),
    "report": RetryPolicy(2, "30s", 2.0, "600s"),
}
LOCAL_RETRY = {
    name: RetryPolicy(policy.retries, "1s", 1.0, "5s") for name, policy in CLUSTER_RETRY.items()
}


def apply_retry(task: dsl.PipelineTask, policy: RetryPolicy) -> None:
    """Retry ``task`` as ``policy`` says."""
    task.set_retry(
        num_retries=policy.retries,
        backoff_duration=policy.backoff,
        backoff_factor=policy.factor,
        backoff_max_duration=policy.max_backoff,
    )


def cluster_env(task: dsl.PipelineTask, settings: Settings, milvus: bool) -> None:
    """Credentials from Kubernetes Secrets (never values), and the in-cluster Milvus server."""
    s3_keys = {key: key for key in S3_SECRET_KEYS}
    kubernetes.use_secret_as_env(
        task, secret_name=settings.s3_credentials_secret, secret_key_to_env=s3_keys
    )
    if milvus:
        # An empty milvus_uri parameter means "the settings' Milvus": in the cluster, the server.
        task.set_env_variable("LLMW_MILVUS_URI", settings.cluster_milvus_uri)
        # Optional: a Milvus without authentication has no token to mount.
        kubernetes.use_secret_as_env(
            task,
            secret_name=settings.milvus_credentials_secret,
            secret_key_to_env={key: key for key in MILVUS_SECRET_KEYS},
            optional=True,
        )


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``document-ingestion`` pipeline for ``settings`` (the process's settings by default).

    ``for_cluster=False`` builds the variant that ``kfp.local`` runs: the same components, DAG,
    caching and retries (with a short backoff), shards one at a time (Milvus Lite), and no
    in-cluster environment (the Milvus server URI, GPU variables) so that the user's own
    ``LLMW_*`` settings apply. kfp.local ignores the Kubernetes platform config (secrets, node
    selector, tolerations) in any case.
    """
    settings = settings or get_settings()
    placement = embedding_placement(settings) if for_cluster else None
    # The embedding step runs on the placement's image (the project built for that GPU's stack,
    # ROCm on drizzt); the others on the component image.
    parts = make_components(
        settings.component_image, placement.image if placement else settings.component_image
    )
    retry = CLUSTER_RETRY if for_cluster else LOCAL_RETRY
    parallelism = SHARD_PARALLELISM if for_cluster else LOCAL_SHARD_PARALLELISM

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    def document_ingestion(
        source: str, collection: str = "documents", milvus_uri: str = "", prune: bool = False
    ) -> dict:
        args = dict(source=source, collection=collection, milvus_uri=milvus_uri, prune=prune)

        planned = parts.plan(**args).set_display_name("plan shards")
        # Off: the listing changes while the parameters stay the same.
        planned.set_caching_options(enable_caching=False)
        apply_retry(planned, retry["plan"])

        with dsl.ParallelFor(planned.output, parallelism=parallelism) as shard:
            ingested = parts.ingest_shard(**args, shard=shard).set_display_name("ingest shard")
            # Off: what a shard does depends on Milvus's state, which is outside KFP's cache
            # key; a cached report would claim work that was never done again.
            ingested.set_caching_options(enable_caching=False)
            apply_retry(ingested, retry["ingest"])

        reported = parts.report(**args, shard_reports=dsl.Collected(ingested.output))
        reported.set_display_name("report")
        # Off: it prunes Milvus and must report this run's shards, never an earlier run's.
        reported.set_caching_options(enable_caching=False)
        apply_retry(reported, retry["report"])

        if placement is not None:
            cluster_env(planned, settings, milvus=False)
            cluster_env(ingested, settings, milvus=True)
            cluster_env(reported, settings, milvus=True)
            apply_placement(ingested, placement)
        output: dict = reported.outputs["Output"]
        return output

    return document_ingestion


def embedding_placement(settings: Settings) -> Placement:
    """Where the embedding (ingest) step runs: sentence-transformers on its default node (the
    BGE node, drizzt, in the shipped inventory). PlacementError/InventoryError say why not."""
    inventory = load_inventory(settings.cluster_inventory)
    return place(GpuNeed(framework=EMBEDDING_FRAMEWORK), inventory)


def apply_placement(task: dsl.PipelineTask, placement: Placement) -> None:
    """Node selector, tolerations, accelerator and GPU environment from a placement."""
    for key, value in sorted(placement.node_selector.items()):
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    for toleration in placement.tolerations:
        kubernetes.add_toleration(
            task,
            key=toleration.get("key"),
            operator=toleration.get("operator"),
            value=toleration.get("value"),
            effect=toleration.get("effect"),
            toleration_seconds=toleration.get("tolerationSeconds"),
        )
    if placement.resource is not None and placement.count > 0:
        # KFP turns the accelerator type into the container's resource limit name.
        task.set_accelerator_type(placement.resource)
        task.set_accelerator_limit(placement.count)
    for name, value in sorted(placement.env.items()):
        task.set_env_variable(name, value)
