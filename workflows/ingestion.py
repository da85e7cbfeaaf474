"""The ``document-ingestion`` WorkflowTemplate: plan shards -> ingest each shard -> report.

Each script step is a Hera runner step (``constructor="runner"``): the container runs
``python -m hera.workflows.runner -e workflows.ingestion:<step> <file>`` where the file holds
``{{inputs.parameters}}`` as JSON. The step functions below are a few lines each: they build the
job's parameters and call the same step functions as the KFP pipeline, from
``components.ingest.steps``. Their return value, printed as JSON by the runner, is the step's
``outputs.result``.

The plan step writes the source's listing to storage and returns one spec per shard,
``{"shard": "I/N", "listing": URI, "report": URI}``: the fan-out passes ``{{item.shard}}``,
``{{item.listing}}`` and ``{{item.report}}`` to each shard, and the report step gets the specs
(it prunes against that listing). Each shard leaves its report (bounded) where its spec says,
under the run data and the run's uid, and the report step reads them from there: no parameter
grows with the shards' reports.

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


def plan(
    source: str, collection: str, milvus_uri: str, prune: str, run_id: str
) -> list[dict[str, str]]:
    """List the source once, write the listing to storage, cut it into shards; the specs
    (``{"shard": "I/N", "listing": URI, "report": URI}``, the reports under ``run_id``) feed
    ``withParam``."""
    from components.ingest.steps import plan_shards

    # stdout is the step's result: anything a library prints goes to the log (stderr) instead.
    # Bad input exits 2 with one line, which the retry strategy does not retry.
    with refusing_bad_input("ingest plan"), contextlib.redirect_stdout(sys.stderr):
        return plan_shards(_params(source, collection, milvus_uri, prune), run_id=run_id)


def ingest_shard(
    source: str, collection: str, milvus_uri: str, prune: str, shard: str, listing: str, report: str
) -> dict[str, Any]:
    """Ingest one shard's slice of the listing into Milvus; its report goes to ``report``, its
    URI and counts are the result."""
    from components.ingest.steps import ingest_shard as step
    from components.ingest.steps import store_shard_report

    with refusing_bad_input("ingest shard"), contextlib.redirect_stdout(sys.stderr):
        result = step(_params(source, collection, milvus_uri, prune), shard, listing)
        return store_shard_report(result, report)


def report(
    source: str,
    collection: str,
    milvus_uri: str,
    prune: str,
    planned: str,
    summary: Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Merge the shard reports (read where the planned specs say), prune against the planned
    listing when asked, write the Markdown summary artifact; the run's report is the result."""
    from components.ingest.steps import finish_ingestion, report_markdown

    params = _params(source, collection, milvus_uri, prune)
    with refusing_bad_input("ingest finish"), contextlib.redirect_stdout(sys.stderr):
        result = finish_ingestion(params, None, json.loads(planned))
    common.write_summary(summary, report_markdown(result, params))
    return result


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
        **common.step_kwargs(job, "plan", settings, job.retries.plan),
    )
    ingest_template = Script(
        name=INGEST_SHARD_STEP,
        source=ingest_shard,
        constructor="runner",
        # The project built for the placed GPU's stack (ROCm on drizzt).
        image=placement.image,
        env=common.step_env(settings, milvus=True, extra=placement.env),
        **common.step_kwargs(job, INGEST_SHARD_STEP, settings, job.retries.shard, placement),
    )
    report_template = Script(
        name="report",
        source=report,
        constructor="runner",
        image=image,
        env=common.step_env(settings, milvus=True),
        outputs=[common.summary_artifact(TEMPLATE_NAME)],
        **common.step_kwargs(job, "report", settings, job.retries.finish),
    )
    return plan_template, ingest_template, report_template


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``document-ingestion`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    job = get_job(TEMPLATE_NAME)
    workflow_args = common.parameter_refs(WORKFLOW_PARAMETERS)

    with common.workflow_template(
        job,
        settings,
        common.model_arguments(IngestParams, DESCRIPTIONS),
        mutex=common.COLLECTION_MUTEX,
    ) as template:
        plan_template, ingest_template, report_template = step_templates(job, settings)
        with common.main_steps(job.shard_parallelism, report_step="report"):
            planned = plan_template(
                name="plan", arguments={**workflow_args, "run_id": "{{workflow.uid}}"}
            )
            assert isinstance(planned, Step)
            ingest_template(
                name=INGEST_SHARD_STEP,
                arguments={
                    **workflow_args,
                    "shard": "{{item.shard}}",
                    "listing": "{{item.listing}}",
                    "report": "{{item.report}}",
                },
                with_param=planned.result,
            )
            report_template(name="report", arguments={**workflow_args, "planned": planned.result})
    return template
