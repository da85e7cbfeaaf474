"""The ``batch-inference`` WorkflowTemplate: plan shards -> run each shard -> merge.

Each script step is a Hera runner step (``constructor="runner"``), a few lines calling the same
step functions as the KFP pipeline, from ``components.inference.steps``; its return value, printed
as JSON by the runner, is the step's ``outputs.result``.

Where a shard runs depends on the ``engine`` parameter (the job's ``step_needs`` in
``components.registry``, from ``components.inference.models.ENGINE_NEEDS``): vLLM on its GPU
(khelben in the shipped inventory: node selector, toleration, ``amd.com/gpu``),
transformers on the CPU, openai anywhere. A template's placement is fixed when it renders, so
there is one shard template per engine, and the fan-out step of each runs only ``when`` the
``engine`` argument names it. The other two are Skipped and have no outputs in Argo, so the
merge step does not take the shards' results: it reads each shard's report from beside its
output (``components.inference.steps.merge_shards``), given the planned shards.

Credentials come from Secrets (never values). The Markdown summary is an output artifact in
the cluster's default artifact repository (MinIO), under
``batch-inference/<workflow name>/summary.md``.

No ``from __future__ import annotations`` here: Hera reads the step functions' annotations to
build each template's inputs and outputs.
"""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Artifact, Script, Step, WorkflowTemplate

from components.cluster.placement import Placement
from components.exit_codes import refusing_bad_input
from components.inference.models import BatchJobParams, shard_step
from components.registry import JobSpec, get_job
from components.settings import Settings, get_settings
from workflows import common

TEMPLATE_NAME = "batch-inference"
WORKFLOW_PARAMETERS = tuple(BatchJobParams.model_fields)


# --- steps: thin wrappers over components.inference.steps -----------------------------------------


def plan(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: str,
    concurrency: str,
    max_tokens: str,
    temperature: str,
    batch_size: str,
) -> list[str]:
    """Read the input once and cut it into shards ("I/N"); the list feeds ``withParam``."""
    from components.inference.steps import job_params, plan_shards

    params = job_params(**locals())
    # stdout is the step's result: anything a library prints goes to the log (stderr) instead.
    # Bad input exits 2 with one line, which the retry strategy does not retry.
    with refusing_bad_input("batch plan"), contextlib.redirect_stdout(sys.stderr):
        return plan_shards(params)


def infer_shard(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: str,
    concurrency: str,
    max_tokens: str,
    temperature: str,
    batch_size: str,
    shard: str,
) -> dict[str, Any]:
    """Run one shard into its own output file; its report (JSON) is the step's result."""
    from components.inference.steps import job_params, run_shard

    params = job_params(**locals())
    with refusing_bad_input("batch shard"), contextlib.redirect_stdout(sys.stderr):
        return run_shard(params, shard)


def merge(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: str,
    concurrency: str,
    max_tokens: str,
    temperature: str,
    batch_size: str,
    planned: str,
    summary: Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)],
) -> dict[str, Any]:
    """Merge the planned shards' outputs (reports read from beside them) into the output, write
    the Markdown summary artifact; the run's report is the step's result."""
    from components.inference.steps import job_params, merge_shards, report_markdown

    params = job_params(**locals())
    with refusing_bad_input("batch merge"), contextlib.redirect_stdout(sys.stderr):
        result = merge_shards(params, json.loads(planned))
    common.write_summary(summary, report_markdown(result, params))
    return result


# --- the template -----------------------------------------------------------------------------


def shard_template(
    job: JobSpec, engine: str, settings: Settings, placement: Placement | None
) -> Script:
    """``engine``'s shard template: on its placement (its image, GPU, node and variables) when it
    has one, else anywhere on the component image; with the Secrets the job declares for it,
    whatever the placement."""
    step = shard_step(engine)
    # The placement's image: vLLM's for the GPU's stack, the project's CPU build.
    image = placement.image if placement is not None else settings.component_image
    env = common.step_env(settings, milvus=False, extra=placement.env if placement else None)
    return Script(
        name=step,
        source=infer_shard,
        constructor="runner",
        image=image,
        env=env + common.step_secrets(job, step, settings),
        **common.step_kwargs(job, step, settings, job.retries.shard, placement),
    )


def build_template(settings: Settings | None = None) -> WorkflowTemplate:
    """The ``batch-inference`` WorkflowTemplate for ``settings`` (the process's by default)."""
    settings = settings or get_settings()
    job = get_job(TEMPLATE_NAME)
    image = settings.component_image
    workflow_args = common.parameter_refs(WORKFLOW_PARAMETERS)

    with common.workflow_template(
        job, settings, common.model_arguments(BatchJobParams)
    ) as template:
        plan_template = Script(
            name="plan",
            source=plan,
            constructor="runner",
            image=image,
            env=common.step_env(settings, milvus=False),
            **common.step_kwargs(job, "plan", settings, job.retries.plan),
        )
        placements = job.placements(settings)
        shard_templates = {
            engine: shard_template(job, engine, settings, placements.get(shard_step(engine)))
            for engine in job.engines
        }
        merge_template = Script(
            name="merge",
            source=merge,
            constructor="runner",
            image=image,
            env=common.step_env(settings, milvus=False),
            outputs=[common.summary_artifact(TEMPLATE_NAME)],
            **common.step_kwargs(job, "merge", settings, job.retries.finish),
        )
        with common.main_steps(job.shard_parallelism, report_step="merge") as main:
            planned = plan_template(name="plan", arguments=workflow_args)
            assert isinstance(planned, Step)
            with main.parallel():
                for engine, template_of_engine in shard_templates.items():
                    template_of_engine(
                        name=shard_step(engine),
                        arguments={**workflow_args, "shard": "{{item}}"},
                        with_param=planned.result,
                        when=f"'{{{{workflow.parameters.engine}}}}' == '{engine}'",
                    )
            merge_template(name="merge", arguments={**workflow_args, "planned": planned.result})
    return template
