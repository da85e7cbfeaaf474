"""The ``document-ingestion`` WorkflowTemplate: plan shards -> ingest each shard -> report.

Each script step is a Hera runner step (``constructor="runner"``): the container runs
``python -m hera.workflows.runner -e workflows.ingestion:<step> <file>`` where the file holds
``{{inputs.parameters}}`` as JSON. The step functions below are a few lines each: they build the
job's parameters and call the same step functions as the KFP pipeline, from
``components.ingest.steps``. Their return value, printed as JSON by the runner, is the step's
``outputs.result``; Argo aggregates the fanned-out shards' results into a JSON list, which the
report step receives.

The plan step writes the source's listing to storage and returns one spec per shard,
``{"shard": "I/N", "listing": URI}``: the fan-out passes ``{{item.shard}}`` and
``{{item.listing}}`` to each shard, and the report step gets the specs (it prunes against that
listing).

What the job declares comes from ``components.registry``: its description, shard parallelism,
the embedding step's GPU placement (sentence-transformers on its default node, the BGE node
drizzt in the shipped inventory) and the retries. Cluster specifics come from settings: the
component image, Secrets for credentials (never values), the in-cluster Milvus, where the run's
data lives. The Markdown summary is an output artifact stored in the cluster's default artifact
repository (MinIO), under ``document-ingestion/<workflow name>/summary.md``.

No ``from __future__ import annotations`` here: Hera reads the step functions' annotations to
build each template's inputs and outputs.
"""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Artifact, Script, Step, WorkflowTemplate

from components.exit_codes import refusing_bad_input
from components.ingest.models import INGEST_SHARD_STEP, IngestParams
from components.registry import JobSpec, get_job
from components.settings import Settings, get_settings
from workflows import common

TEMPLATE_NAME = "document-ingestion"
WORKFLOW_PARAMETERS = tuple(IngestParams.model_fields)


# --- steps: thin wrappers over components.ingest.steps ----------------------------------------


def _params(source: str, collection: str, milvus_uri: str, prune: str) -> dict[str, Any]:
    """The job's parameters from Argo's strings: an empty milvus_uri means "from settings"."""
    return {
        "source": source,
        "collection": collection,
        "milvus_uri": milvus_uri or None,
        "prune": prune,
    }


def plan(source: str, collection: str, milvus_uri: str, prune: str) -> list[dict[str, str]]:
    """List the source once, write the listing to storage, cut it into shards; the specs
    (``{"shard": "I/N", "listing": URI}``) feed ``withParam``."""
    from components.ingest.steps import plan_shards

    # stdout is the step's result: anything a library prints goes to the log (stderr) instead.
    # Bad input exits 2 with one line, which the retry strategy does not retry.
    with refusing_bad_input(), contextlib.redirect_stdout(sys.stderr):
        return plan_shards(_params(source, collection, milvus_uri, prune))


def ingest_shard(
    source: str, collection: str, milvus_uri: str, prune: str, shard: str, listing: str
) -> dict[str, Any]:
    """Ingest one shard's slice of the listing into Milvus; its report (JSON) is the result."""
    from components.ingest.steps import ingest_shard as step

    with refusing_bad_input(), contextlib.redirect_stdout(sys.stderr):
        return step(_params(source, collection, milvus_uri, prune), shard, listing)


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: str,
    planned: str,
    shard_reports: str,
    summary: Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Merge the shard reports (Argo's JSON list of results), prune against the planned listing
    when asked, write the Markdown summary artifact; the run's report is the step's result."""
    from components.ingest.steps import finish_ingestion, report_markdown

    params = _params(source, collection, milvus_uri, prune)
    with refusing_bad_input(), contextlib.redirect_stdout(sys.stderr):
        result = finish_ingestion(params, json.loads(shard_reports), json.loads(planned))
    common.write_summary(summary, report_markdown(result, params))
    return result


def record_status(workflow: str, status: str) -> dict[str, str]:
    """The exit handler's step: record how the run ended (in its log and as its result)."""
    return common.record_status(TEMPLATE_NAME, workflow, status)


# --- the template -----------------------------------------------------------------------------


# Where Argo's descriptions say more than the model's: "" means the cluster's Milvus here.
DESCRIPTIONS = {
    "collection": "Milvus collection",
    "milvus_uri": "Milvus server URL; empty for the cluster's Milvus",
}


def step_templates(job: JobSpec, settings: Settings) -> tuple[Script, Script, Script]:
    """The plan, ingest-shard and report script templates (inside a template's context)."""
    placement = job.placements(settings)[INGEST_SHARD_STEP]
    assert placement is not None  # the embedding step always has a GPU need
    image = settings.component_image
    plan_template = Script(
        name="plan",
        source=plan,
        constructor="runner",
        image=image,
        env=common.step_env(settings, milvus=False, run_data=True),
        retry_strategy=common.retry_strategy(job.retries.plan),
    )
    ingest_template = Script(
        name=INGEST_SHARD_STEP,
        source=ingest_shard,
        constructor="runner",
        # The project built for the placed GPU's stack (ROCm on drizzt).
        image=placement.image,
        env=common.step_env(settings, milvus=True, extra=placement.env),
        retry_strategy=common.retry_strategy(job.retries.shard),
        **common.placement_kwargs(placement),
    )
    report_template = Script(
        name="report",
        source=report,
        constructor="runner",
        image=image,
        env=common.step_env(settings, milvus=True),
        retry_strategy=common.retry_strategy(job.retries.finish),
        outputs=[common.summary_artifact(TEMPLATE_NAME)],
    )
    return plan_template, ingest_template, report_template


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``document-ingestion`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    job = get_job(TEMPLATE_NAME)
    workflow_args = common.parameter_refs(WORKFLOW_PARAMETERS)

    with common.workflow_template(
        job, settings, common.model_arguments(IngestParams, DESCRIPTIONS)
    ) as template:
        plan_template, ingest_template, report_template = step_templates(job, settings)
        with common.main_steps(
            record_status, settings.component_image, job.shard_parallelism, report_step="report"
        ):
            planned = plan_template(name="plan", arguments=workflow_args)
            assert isinstance(planned, Step)
            shards = ingest_template(
                name=INGEST_SHARD_STEP,
                arguments={
                    **workflow_args,
                    "shard": "{{item.shard}}",
                    "listing": "{{item.listing}}",
                },
                with_param=planned.result,
            )
            assert isinstance(shards, Step)
            report_template(
                name="report",
                arguments={
                    **workflow_args,
                    "planned": planned.result,
                    "shard_reports": shards.result,
                },
            )
    return template
