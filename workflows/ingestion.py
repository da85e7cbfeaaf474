"""The ``document-ingestion`` WorkflowTemplate: plan shards -> ingest each shard -> report.

Each script step is a Hera runner step (``constructor="runner"``): the container runs
``python -m hera.workflows.runner -e workflows.ingestion:<step> <file>`` where the file holds
``{{inputs.parameters}}`` as JSON. The step functions below are a few lines each: they build the
job's parameters and call the same step functions as the KFP pipeline, from
``components.ingest.steps``. Their return value, printed as JSON by the runner, is the step's
``outputs.result``; Argo aggregates the fanned-out shards' results into a JSON list, which the
report step receives.

Cluster specifics come from settings and the placement function: the component image, the GPU
placement of the embedding step (sentence-transformers on its default node, the BGE node
drizzt in the shipped inventory), Secrets for credentials (never values), the in-cluster Milvus.
The Markdown summary is an output artifact stored in the cluster's default artifact repository
(MinIO), under ``document-ingestion/<workflow name>/summary.md``.

No ``from __future__ import annotations`` here: Hera reads the step functions' annotations to
build each template's inputs and outputs.
"""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Artifact, Parameter, Script, Step, WorkflowTemplate

from components.cluster.inventory import load_inventory
from components.cluster.placement import GpuNeed, Placement, place
from components.settings import Settings, get_settings
from workflows import common

TEMPLATE_NAME = "document-ingestion"
DESCRIPTION = (
    "Documents from a folder or s3:// prefix, partitioned and chunked with unstructured, "
    "embedded with sentence-transformers, upserted into Milvus."
)
# How many shards ingest at once. Every shard asks for the embedding GPU, so the scheduler
# queues what the GPU cannot hold; more would only add pending pods.
SHARD_PARALLELISM = 4
EMBEDDING_FRAMEWORK = "sentence-transformers"
WORKFLOW_PARAMETERS = ("source", "collection", "milvus_uri", "prune")


# --- steps: thin wrappers over components.ingest.steps ----------------------------------------


def _params(source: str, collection: str, milvus_uri: str, prune: str) -> dict[str, Any]:
    """The job's parameters from Argo's strings: an empty milvus_uri means "from settings"."""
    return {
        "source": source,
        "collection": collection,
        "milvus_uri": milvus_uri or None,
        "prune": prune,
    }


def plan(source: str, collection: str, milvus_uri: str, prune: str) -> list[str]:
    """List the source once and cut it into shards ("I/N"); the list feeds ``withParam``."""
    from components.ingest.steps import plan_shards

    # stdout is the step's result: anything a library prints goes to the log (stderr) instead.
    with contextlib.redirect_stdout(sys.stderr):
        return plan_shards(_params(source, collection, milvus_uri, prune))


def ingest_shard(
    source: str, collection: str, milvus_uri: str, prune: str, shard: str
) -> dict[str, Any]:
    """Ingest one shard into Milvus; its report (JSON) is the step's result."""
    from components.ingest.steps import ingest_shard as step

    with contextlib.redirect_stdout(sys.stderr):
        return step(_params(source, collection, milvus_uri, prune), shard)


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: str,
    shard_reports: str,
    summary: Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Merge the shard reports (Argo's JSON list of results), prune when asked, write the
    Markdown summary artifact; the run's report is the step's result."""
    from components.ingest.steps import finish_ingestion, report_markdown

    params = _params(source, collection, milvus_uri, prune)
    with contextlib.redirect_stdout(sys.stderr):
        result = finish_ingestion(params, json.loads(shard_reports))
    common.write_summary(summary, report_markdown(result, params))
    return result


def record_status(workflow: str, status: str) -> dict[str, str]:
    """The exit handler's step: record how the run ended (in its log and as its result)."""
    return common.record_status(TEMPLATE_NAME, workflow, status)


# --- the template -----------------------------------------------------------------------------


def embedding_placement(settings: Settings) -> Placement:
    """Where the embedding (ingest) step runs: sentence-transformers on its default node (the
    BGE node, drizzt, in the shipped inventory). PlacementError/InventoryError say why not."""
    inventory = load_inventory(settings.cluster_inventory)
    return place(GpuNeed(framework=EMBEDDING_FRAMEWORK), inventory)


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``document-ingestion`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    placement = embedding_placement(settings)
    image = settings.component_image
    workflow_args = common.parameter_refs(WORKFLOW_PARAMETERS)

    with common.workflow_template(
        TEMPLATE_NAME,
        DESCRIPTION,
        settings,
        arguments=[
            Parameter(name="source", description="a folder, a file, or s3://bucket/prefix"),
            Parameter(name="collection", value="documents", description="Milvus collection"),
            Parameter(
                name="milvus_uri",
                value="",
                description="Milvus server URL; empty for the cluster's Milvus",
            ),
            Parameter(
                name="prune",
                value="false",
                enum=["false", "true"],
                description="delete documents that are gone from the source",
            ),
        ],
    ) as template:
        plan_template = Script(
            name="plan",
            source=plan,
            constructor="runner",
            image=image,
            env=common.step_env(settings, milvus=False),
            retry_strategy=common.retry_strategy(3, "30s", "10m"),
        )
        ingest_template = Script(
            name="ingest-shard",
            source=ingest_shard,
            constructor="runner",
            # The project built for the placed GPU's stack (ROCm on drizzt).
            image=placement.image,
            env=common.step_env(settings, milvus=True, extra=placement.env),
            retry_strategy=common.retry_strategy(3, "60s", "30m"),
            **common.placement_kwargs(placement),
        )
        report_template = Script(
            name="report",
            source=report,
            constructor="runner",
            image=image,
            env=common.step_env(settings, milvus=True),
            retry_strategy=common.retry_strategy(2, "30s", "10m"),
            outputs=[common.summary_artifact(TEMPLATE_NAME)],
        )
        with common.main_steps(record_status, image, SHARD_PARALLELISM, report_step="report"):
            planned = plan_template(name="plan", arguments=workflow_args)
            assert isinstance(planned, Step)
            shards = ingest_template(
                name="ingest-shard",
                arguments={**workflow_args, "shard": "{{item}}"},
                with_param=planned.result,
            )
            assert isinstance(shards, Step)
            report_template(
                name="report", arguments={**workflow_args, "shard_reports": shards.result}
            )
    return template
