"""The ``document-ingestion`` WorkflowTemplate: plan shards -> ingest each shard -> report.

Each script step is a Hera runner step (``constructor="runner"``): the container runs
``python -m hera.workflows.runner -e workflows.ingestion:<step> <file>`` where the file holds
``{{inputs.parameters}}`` as JSON. The step functions below are a few lines each: they build the
job's parameters and call the same step functions as the KFP pipeline, from
``components.ingest_steps``. Their return value, printed as JSON by the runner, is the step's
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

from hera.workflows import (
    Artifact,
    Env,
    NoneArchiveStrategy,
    Parameter,
    RetryStrategy,
    S3Artifact,
    Script,
    SecretEnv,
    Step,
    Steps,
    WorkflowTemplate,
)
from hera.workflows import models as m
from hera.workflows.script import RunnerScriptConstructor

from components.inventory import load_inventory
from components.placement import GpuNeed, Placement, place
from components.settings import MILVUS_SECRET_KEYS, S3_SECRET_KEYS, Settings, get_settings

TEMPLATE_NAME = "document-ingestion"
DESCRIPTION = (
    "Documents from a folder or s3:// prefix, partitioned and chunked with unstructured, "
    "embedded with sentence-transformers, upserted into Milvus."
)
ENTRYPOINT = "main"
EXIT_HANDLER = "exit-handler"
# How many shards ingest at once. Every shard asks for the embedding GPU, so the scheduler
# queues what the GPU cannot hold; more would only add pending pods.
SHARD_PARALLELISM = 4
# Secret data keys follow the environment variable names they feed (see Settings).
EMBEDDING_FRAMEWORK = "sentence-transformers"
# Where Hera's runner writes annotated outputs (the summary artifact) inside the container.
OUTPUTS_DIRECTORY = RunnerScriptConstructor.DEFAULT_HERA_OUTPUTS_DIRECTORY
SUMMARY_ARTIFACT = "summary"
SUMMARY_KEY = TEMPLATE_NAME + "/{{workflow.name}}/summary.md"
WORKFLOW_PARAMETERS = ("source", "collection", "milvus_uri", "prune")


# --- steps: thin wrappers over components.ingest_steps ----------------------------------------


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
    from components.ingest_steps import plan_shards

    # stdout is the step's result: anything a library prints goes to the log (stderr) instead.
    with contextlib.redirect_stdout(sys.stderr):
        return plan_shards(_params(source, collection, milvus_uri, prune))


def ingest_shard(
    source: str, collection: str, milvus_uri: str, prune: str, shard: str
) -> dict[str, Any]:
    """Ingest one shard into Milvus; its report (JSON) is the step's result."""
    from components.ingest_steps import ingest_shard as step

    with contextlib.redirect_stdout(sys.stderr):
        return step(_params(source, collection, milvus_uri, prune), shard)


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: str,
    shard_reports: str,
    summary: Annotated[Path, Artifact(name=SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Merge the shard reports (Argo's JSON list of results), prune when asked, write the
    Markdown summary artifact; the run's report is the step's result."""
    from components.ingest_steps import finish_ingestion, report_markdown

    params = _params(source, collection, milvus_uri, prune)
    with contextlib.redirect_stdout(sys.stderr):
        result = finish_ingestion(params, json.loads(shard_reports))
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(report_markdown(result, params), encoding="utf-8")
    return result


def record_status(workflow: str, status: str) -> dict[str, str]:
    """The exit handler's step: record how the run ended (in its log and as its result)."""
    print(f"{TEMPLATE_NAME} run {workflow} ended: {status}", file=sys.stderr)
    return {"workflow": workflow, "template": TEMPLATE_NAME, "status": status}


# --- the template -----------------------------------------------------------------------------


def embedding_placement(settings: Settings) -> Placement:
    """Where the embedding (ingest) step runs: sentence-transformers on its default node (the
    BGE node, drizzt, in the shipped inventory). PlacementError/InventoryError say why not."""
    inventory = load_inventory(settings.cluster_inventory)
    return place(GpuNeed(framework=EMBEDDING_FRAMEWORK), inventory)


def secret_env(secret: str, keys: tuple[str, ...], optional: bool = False) -> list[SecretEnv]:
    """One variable per key of ``secret``, named like the key."""
    return [
        SecretEnv(name=key, secret_name=secret, secret_key=key, optional=optional or None)
        for key in keys
    ]


def step_env(settings: Settings, milvus: bool, extra: dict[str, str] | None = None) -> list[Any]:
    """Credentials from Kubernetes Secrets (never values); with ``milvus``, the in-cluster Milvus
    server (used when the milvus_uri argument is empty) and its optional token."""
    env: list[Any] = [*secret_env(settings.s3_credentials_secret, S3_SECRET_KEYS)]
    if milvus:
        env.append(Env(name="LLMW_MILVUS_URI", value=settings.cluster_milvus_uri))
        # Optional: a Milvus without authentication has no token to mount.
        env += secret_env(settings.milvus_credentials_secret, MILVUS_SECRET_KEYS, optional=True)
    env += [Env(name=name, value=value) for name, value in sorted((extra or {}).items())]
    return env


def retry_strategy(limit: int, backoff: str, cap: str) -> RetryStrategy:
    """Retries on any failure (a pod evicted from the GPU node included), waiting ``backoff``
    then twice as long each time, never more than ``cap``. Reruns are safe: ids are
    deterministic and a shard converges to the same rows after a crash."""
    return RetryStrategy(
        limit=limit,
        retry_policy="Always",
        backoff=m.Backoff(duration=backoff, factor=m.IntOrString(root=2), cap=cap),
    )


def placement_kwargs(placement: Placement) -> dict[str, Any]:
    """Node selector, tolerations and the GPU resource limit of a placement, for a Script."""
    kwargs: dict[str, Any] = {}
    if placement.node_selector:
        kwargs["node_selector"] = dict(sorted(placement.node_selector.items()))
    if placement.tolerations:
        kwargs["tolerations"] = [m.Toleration(**t) for t in placement.tolerations]
    if placement.resource is not None and placement.count > 0:
        quantity = m.Quantity(root=str(placement.count))
        # Extended resources: the request defaults to the limit.
        kwargs["resources"] = m.ResourceRequirements(limits={placement.resource: quantity})
    return kwargs


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``document-ingestion`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    placement = embedding_placement(settings)
    image = settings.component_image
    workflow_args = {name: f"{{{{workflow.parameters.{name}}}}}" for name in WORKFLOW_PARAMETERS}

    with WorkflowTemplate(
        name=TEMPLATE_NAME,
        namespace=settings.argo_namespace,
        labels={
            "app.kubernetes.io/name": TEMPLATE_NAME,
            "app.kubernetes.io/part-of": "llm-workflows",
        },
        annotations={"workflows.argoproj.io/description": DESCRIPTION},
        entrypoint=ENTRYPOINT,
        on_exit=EXIT_HANDLER,
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
            env=step_env(settings, milvus=False),
            retry_strategy=retry_strategy(3, "30s", "10m"),
        )
        ingest_template = Script(
            name="ingest-shard",
            source=ingest_shard,
            constructor="runner",
            # The project built for the placed GPU's stack (ROCm on drizzt).
            image=placement.image,
            env=step_env(settings, milvus=True, extra=placement.env),
            retry_strategy=retry_strategy(3, "60s", "30m"),
            **placement_kwargs(placement),
        )
        report_template = Script(
            name="report",
            source=report,
            constructor="runner",
            image=image,
            env=step_env(settings, milvus=True),
            retry_strategy=retry_strategy(2, "30s", "10m"),
            outputs=[
                # Key only: bucket, endpoint and credentials come from the cluster's default
                # artifact repository (MinIO). Plain Markdown, not a tarball.
                S3Artifact(
                    name=SUMMARY_ARTIFACT,
                    path=f"{OUTPUTS_DIRECTORY}/artifacts/{SUMMARY_ARTIFACT}",
                    key=SUMMARY_KEY,
                    archive=NoneArchiveStrategy(),
                )
            ],
        )
        status_template = Script(
            name="record-status", source=record_status, constructor="runner", image=image
        )
        with Steps(
            name=ENTRYPOINT,
            parallelism=SHARD_PARALLELISM,
            outputs=[
                Parameter(
                    name="report",
                    value_from=m.ValueFrom(parameter="{{steps.report.outputs.result}}"),
                )
            ],
        ):
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
        # Argo runs the exit handler with the workflow's arguments only: a steps template
        # passes the run's name and final status ({{workflow.status}}) to the script step.
        with Steps(name=EXIT_HANDLER):
            status_template(
                name="record-status",
                arguments={"workflow": "{{workflow.name}}", "status": "{{workflow.status}}"},
            )
    return template
