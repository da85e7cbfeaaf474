"""The ``document-removal`` WorkflowTemplate: one step that removes documents' rows from Milvus.

The step is a Hera runner step, like ``document-ingestion``'s, calling the same function as the
KFP pipeline (``components.ingest.removal.removal_step``). Argo passes ``uris`` as JSON text
(a list of source URIs); the step's result is the run's report, and its Markdown summary is an
output artifact under ``document-removal/<workflow name>/summary.md``. Its environment (the
S3 and Milvus Secrets, the in-cluster Milvus) and retries are those of ingestion's report step.

No ``from __future__ import annotations`` here: Hera reads the step function's annotations to
build the template's inputs and outputs.
"""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Artifact, Script, WorkflowTemplate

from components.exit_codes import refusing_bad_input
from components.ingest.models import RemovalParams
from components.registry import get_job
from components.settings import Settings, get_settings
from workflows import common

TEMPLATE_NAME = "document-removal"
STEP = "remove"
WORKFLOW_PARAMETERS = tuple(RemovalParams.model_fields)


def remove(
    uris: str,
    collection: str,
    milvus_uri: str,
    summary: Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Remove the documents ``uris`` (a JSON list) names from the collection; the report is the
    step's result, its Markdown the summary artifact. An empty milvus_uri means the settings'."""
    from components.ingest.removal import removal_markdown, removal_step

    # Bad input (JSON that isn't a list of document URIs…) exits 2 with one line, which the
    # retry strategy does not retry; stdout is the result, so library output goes to stderr.
    with refusing_bad_input("remove documents"), contextlib.redirect_stdout(sys.stderr):
        params = {"uris": json.loads(uris), "collection": collection}
        result = removal_step({**params, "milvus_uri": milvus_uri or None})
    common.write_summary(summary, removal_markdown(result))
    return result


DESCRIPTIONS = {
    "uris": "JSON list of the documents' source URIs (s3://bucket/key, file:///path)",
    "collection": "Milvus collection",
    "milvus_uri": "Milvus server URL; empty for the cluster's Milvus",
}


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``document-removal`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    job = get_job(TEMPLATE_NAME)
    with common.workflow_template(
        job,
        settings,
        common.model_arguments(RemovalParams, DESCRIPTIONS),
        mutex=common.COLLECTION_MUTEX,
    ) as template:
        remove_template = Script(
            name=STEP,
            source=remove,
            constructor="runner",
            image=settings.component_image,
            env=common.step_env(settings, milvus=True),
            outputs=[common.summary_artifact(TEMPLATE_NAME)],
            **common.step_kwargs(job, STEP, settings, job.retries.finish),
        )
        with common.main_steps(job.shard_parallelism, report_step=STEP):
            remove_template(name=STEP, arguments=common.parameter_refs(WORKFLOW_PARAMETERS))
    return template
