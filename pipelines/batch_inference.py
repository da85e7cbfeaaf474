"""The ``batch-inference`` pipeline: plan shards -> run each shard (ParallelFor) -> merge.

Each component is a few lines: it imports its step from ``components.inference.steps`` and calls it.
In the cluster the image runs these functions itself (``pipelines.common.make_component``); the
bodies import what they need inside, since kfp.local runs them from their source.

Where a shard runs depends on the ``engine`` parameter (the job's ``step_needs`` in
``components.registry``, from ``components.inference.models.ENGINE_NEEDS``): vLLM on its GPU
(khelben in the shipped inventory), transformers on the CPU, openai anywhere.
A task's placement is fixed when the pipeline compiles, so the pipeline has one branch per engine
(``dsl.If``/``Elif``/``Else`` on ``engine``), each a ParallelFor of its own shard task and a merge
of its shards; the pipeline's output is the merge that ran (``dsl.OneOf``). Each engine's shard
step is a function of its own (``infer_shard_<engine>``, the component ``infer-shard-<engine>``):
its own executor, image and placement. The merge's ``results`` Dataset stands for the output in
the Kubeflow UI's lineage: the data stays at ``output``, which the artifact's metadata names
with the row counts (its file is that metadata as JSON).

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.cluster.placement import Placement
from components.inference.models import BatchJobParams, shard_step
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
    step_secrets,
)

PIPELINE_NAME = "batch-inference"


# --- components: thin wrappers over components.inference.steps ------------------------------------


def plan_batch(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: int,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    batch_size: int,
    traceparent: str = "",
) -> list:
    """Read the input once and cut it into shards ("I/N")."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, plan_shards
    from components.tracing import join_trace

    join_trace(traceparent)
    params = job_params(**locals())
    with refusing_bad_input("batch plan"):  # exits 2 with one line: "bad input: ..."
        return plan_shards(params)


def infer_shard_vllm(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: int,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    batch_size: int,
    shard: str,
    traceparent: str = "",
) -> dict:
    """Run one shard with vLLM (on its GPU) into its own output file; its report."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, run_shard
    from components.tracing import join_trace

    join_trace(traceparent)
    params = job_params(**locals())
    with refusing_bad_input("batch shard"):
        return run_shard(params, shard)


def infer_shard_transformers(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: int,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    batch_size: int,
    shard: str,
    traceparent: str = "",
) -> dict:
    """Run one shard with transformers (CPU) into its own output file; its report."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, run_shard
    from components.tracing import join_trace

    join_trace(traceparent)
    params = job_params(**locals())
    with refusing_bad_input("batch shard"):
        return run_shard(params, shard)


def infer_shard_openai(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: int,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    batch_size: int,
    shard: str,
    traceparent: str = "",
) -> dict:
    """Run one shard through an OpenAI-compatible API into its own output file; its report."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, run_shard
    from components.tracing import join_trace

    join_trace(traceparent)
    params = job_params(**locals())
    with refusing_bad_input("batch shard"):
        return run_shard(params, shard)


def merge(
    input: str,
    output: str,
    engine: str,
    model: str,
    template: str,
    id_column: str,
    shards: int,
    concurrency: int,
    max_tokens: int,
    temperature: float,
    batch_size: int,
    planned: list,
    shard_reports: list,
    metrics: Output[Metrics],
    summary: Output[Markdown],
    results: Output[Dataset],
    traceparent: str = "",
) -> dict:
    """Merge the shards' outputs into the output; log Metrics, a Markdown summary and the
    ``results`` Dataset (the output's URI and counts as its metadata)."""
    import json

    from components.exit_codes import refusing_bad_input
    from components.inference.steps import (
        job_params,
        merge_shards,
        report_markdown,
        report_metrics,
        results_metadata,
    )
    from components.tracing import join_trace

    join_trace(traceparent)
    params = job_params(**locals())
    with refusing_bad_input("batch merge"):
        result = merge_shards(params, planned, shard_reports)
    for name, value in report_metrics(result).items():
        metrics.log_metric(name, value)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(report_markdown(result, params))
    results.metadata.update(results_metadata(result, params))
    with open(results.path, "w", encoding="utf-8") as out:
        json.dump(results.metadata, out)
    return result


# --- the pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchComponents:
    """The pipeline's components: plan, one shard component per engine, merge."""

    plan: BaseComponent
    infer_shard: dict[str, BaseComponent]  # engine -> its shard component (its own image)
    merge: BaseComponent


# Each engine's shard step: a function of its own, so a component (and an executor, an image, a
# placement) of its own, named like the engine's step (``shard_step``: infer-shard-<engine>).
SHARD_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "vllm": infer_shard_vllm,
    "transformers": infer_shard_transformers,
    "openai": infer_shard_openai,
}


def make_components(
    image: str,
    engines: tuple[str, ...],
    shard_images: dict[str, str] | None = None,
    for_cluster: bool = True,
) -> BatchComponents:
    """The components on ``image`` (the project's component image, kfp included); each engine's
    shard component, named ``infer-shard-<engine>``, on its image from ``shard_images``."""
    missing = [engine for engine in engines if engine not in SHARD_FUNCTIONS]
    if missing:
        raise ValueError(f"{PIPELINE_NAME}: no shard step function for engines {missing}")
    images = shard_images or {}
    shard_components = {
        engine: make_component(SHARD_FUNCTIONS[engine], images.get(engine, image), for_cluster)
        for engine in engines
    }
    return BatchComponents(
        make_component(plan_batch, image, for_cluster),
        shard_components,
        make_component(merge, image, for_cluster),
    )


@dataclass(frozen=True)
class _Build:
    """What the pipeline function's tasks are built from."""

    job: JobSpec
    settings: Settings
    parts: BatchComponents
    placements: dict[str, Placement | None]  # engine -> its shard placement (cluster only)
    for_cluster: bool


def _plan_task(build: _Build, args: dict[str, Any]) -> dsl.PipelineTask:
    """The plan task, uncached (the input may change while the parameters stay the same)."""
    planned = build.parts.plan(**args).set_display_name("plan shards")
    planned.set_caching_options(enable_caching=False)
    apply_retry(planned, retry_policy(build.job.retries.plan, build.for_cluster))
    if build.for_cluster:
        cluster_env(planned, build.settings, milvus=False)
        apply_resources(planned, build.job, "plan", build.settings)
    return planned


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``batch-inference`` pipeline for ``settings`` (the process's settings by default).

    ``for_cluster=False`` builds the variant that ``kfp.local`` runs: the same components, DAG,
    caching and retries (with a short backoff), shards one at a time, and no in-cluster
    environment (secrets, GPU variables), so that the user's own ``LLMW_*`` settings apply.
    """
    settings = settings or get_settings()
    job = get_job(PIPELINE_NAME)
    placements = shard_placements(job, settings) if for_cluster else {}
    # Each engine's shards run on its placement's image (vLLM's for its GPU stack, the
    # project's CPU image for transformers); openai shards and the rest on the component image.
    parts = make_components(
        settings.component_image,
        job.engines,
        {engine: p.image for engine, p in placements.items() if p is not None},
        for_cluster,
    )
    build = _Build(job, settings, parts, placements, for_cluster)

    @dsl.pipeline(name=PIPELINE_NAME, description=job.description)
    def batch_inference(
        input: str,
        output: str,
        model: str,
        engine: str = default(BatchJobParams, "engine"),
        template: str = default(BatchJobParams, "template"),
        id_column: str = default(BatchJobParams, "id_column"),
        shards: int = default(BatchJobParams, "shards"),
        concurrency: int = default(BatchJobParams, "concurrency"),
        max_tokens: int = default(BatchJobParams, "max_tokens"),
        temperature: float = default(BatchJobParams, "temperature"),
        batch_size: int = default(BatchJobParams, "batch_size"),
        traceparent: str = "",
    ) -> dict:
        args = dict(
            input=input, output=output, engine=engine, model=model, template=template,
            id_column=id_column, shards=shards, concurrency=concurrency, max_tokens=max_tokens,
            temperature=temperature, batch_size=batch_size, traceparent=traceparent,
        )  # fmt: skip

        planned = _plan_task(build, args)
        merged_reports = []
        for index, name in enumerate(job.engines):
            if index == 0:
                branch: Any = dsl.If(engine == name, name=f"{name} engine")
            elif index < len(job.engines) - 1:
                branch = dsl.Elif(engine == name, name=f"{name} engine")
            else:
                branch = dsl.Else(name=f"{name} engine")
            with branch:
                merged_reports.append(_engine_branch(build, name, args, planned))
        output_report: dict = dsl.OneOf(*merged_reports)
        return output_report

    return batch_inference


def _engine_branch(
    build: _Build, engine: str, args: dict[str, Any], planned: dsl.PipelineTask
) -> Any:
    """Inside ``engine``'s branch: a ParallelFor of its shard task, then the merge; returns the
    merge's output."""
    retries, for_cluster = build.job.retries, build.for_cluster
    with dsl.ParallelFor(
        planned.output, parallelism=shard_parallelism(build.job, for_cluster)
    ) as shard:
        ran = build.parts.infer_shard[engine](**args, shard=shard)
        ran.set_display_name(f"infer shard ({engine})")
        # Off: what a shard writes depends on its output file, outside KFP's key.
        ran.set_caching_options(enable_caching=False)
        apply_retry(ran, retry_policy(retries.shard, for_cluster))
    merged = build.parts.merge(
        **args, planned=planned.output, shard_reports=dsl.Collected(ran.output)
    ).set_display_name("merge")
    # Off: it must merge and report this run's shards, never an earlier run's.
    merged.set_caching_options(enable_caching=False)
    apply_retry(merged, retry_policy(retries.finish, for_cluster))
    if for_cluster:
        cluster_env(ran, build.settings, milvus=False)
        cluster_env(merged, build.settings, milvus=False)
        apply_resources(ran, build.job, shard_step(engine), build.settings)
        apply_resources(merged, build.job, "merge", build.settings)
        placement = build.placements[engine]
        if placement is not None:
            apply_placement(ran, placement)
        # Whatever the placement: the Secrets the job declares for this engine's shard step.
        step_secrets(ran, build.job, shard_step(engine), build.settings)
    return merged.outputs["Output"]


def shard_placements(job: JobSpec, settings: Settings) -> dict[str, Placement | None]:
    """Each engine's shard placement (None: no GPU, no node). PlacementError/InventoryError say
    why one cannot be placed."""
    placed = job.placements(settings)
    return {engine: placed.get(shard_step(engine)) for engine in job.engines}
