"""The ``document-removal`` pipeline: one component that removes documents' rows from Milvus.

The component is a few lines calling ``components.ingest.removal.removal_step``, the same
function as the Argo template's step; it logs Kubeflow Metrics and a Markdown summary, like
ingestion's report step, whose environment (the S3 and Milvus Secrets, the in-cluster Milvus)
and retries it has. What the job declares comes from ``components.registry``.

No ``from __future__ import annotations`` here: KFP reads the component function's annotations
as parameter and artifact types.
"""

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.ingest.models import RemovalParams
from components.registry import get_job
from components.settings import Settings, get_settings
from pipelines.common import (
    apply_resources,
    apply_retry,
    cluster_env,
    default,
    make_component,
    retry_policy,
)

PIPELINE_NAME = "document-removal"
STEP = "remove"  # its step name, as the Argo template's


def remove(
    uris: list,
    collection: str,
    milvus_uri: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
    traceparent: str = "",
) -> dict:
    """Remove the documents ``uris`` names from the collection; returns the report (without
    nulls, which KFP can't pass), logs Metrics and a Markdown summary."""
    from components.exit_codes import refusing_bad_input
    from components.ingest.removal import removal_markdown, removal_metrics, removal_step
    from components.tracing import join_trace

    join_trace(traceparent)
    params = dict(uris=uris, collection=collection, milvus_uri=milvus_uri or None)
    with refusing_bad_input("remove documents"):  # exits 2 with one line: "bad input: ..."
        result = removal_step(params)
    for name, value in removal_metrics(result).items():
        metrics.log_metric(name, value)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(removal_markdown(result))
    return {key: value for key, value in result.items() if value is not None}


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``document-removal`` pipeline for ``settings`` (the process's settings by default);
    ``for_cluster=False`` is the variant kfp.local runs: the same component and retries (with a
    short backoff), without the in-cluster environment, so the user's ``LLMW_*`` settings apply.
    """
    settings = settings or get_settings()
    job = get_job(PIPELINE_NAME)
    component = make_component(remove, settings.component_image, for_cluster)

    @dsl.pipeline(name=PIPELINE_NAME, description=job.description)
    def document_removal(
        uris: list,
        collection: str = default(RemovalParams, "collection"),
        milvus_uri: str = default(RemovalParams, "milvus_uri"),
        traceparent: str = "",
    ) -> dict:
        removed = component(
            uris=uris, collection=collection, milvus_uri=milvus_uri, traceparent=traceparent
        )
        removed.set_display_name("remove documents")
        # Off: what it does depends on Milvus's state, which is outside KFP's cache key; a
        # cached report would claim a removal that was never done again.
        removed.set_caching_options(enable_caching=False)
        apply_retry(removed, retry_policy(job.retries.finish, for_cluster))
        if for_cluster:
            cluster_env(removed, settings, milvus=True)
            apply_resources(removed, job, STEP, settings)
        output: dict = removed.outputs["Output"]
        return output

    return document_removal
