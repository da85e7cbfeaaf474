"""The ``batch-inference`` pipeline: plan shards -> run each shard (ParallelFor) -> merge.

Each component is a few lines: it imports its step from ``components.inference.steps`` and calls it.
KFP copies a component function's source verbatim into the compiled YAML and runs it in the
component image, where this project is installed, so the bodies import what they need inside.

Where a shard runs depends on the ``engine`` parameter (the job's ``step_needs`` in
``components.registry``, from ``components.inference.models.ENGINE_NEEDS``): vLLM on its GPU
(khelben in the shipped inventory), transformers on the CPU, openai anywhere.
A task's placement is fixed when the pipeline compiles, so the pipeline has one branch per engine
(``dsl.If``/``Elif``/``Else`` on ``engine``), each a ParallelFor of its own shard task and a merge
of its shards; the pipeline's output is the merge that ran (``dsl.OneOf``).

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl
from kfp.dsl import Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.cluster.placement import Placement
from components.inference.models import BatchJobParams, shard_step
from components.registry import JobSpec, get_job
from components.settings import Settings, get_settings
from pipelines.common import (
    apply_placement,
    apply_retry,
    cluster_env,
    default,
    retry_policy,
    shard_parallelism,
    step_secrets,
)

PIPELINE_NAME = "batch-inference"


# --- components: thin wrappers over components.inference.steps ------------------------------------


def plan(
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
) -> list:
    """Read the input once and cut it into shards ("I/N")."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, plan_shards

    params = job_params(**locals())
    with refusing_bad_input():  # exits 2 with one line: "bad input: ..."
        return plan_shards(params)


def infer_shard(
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
) -> dict:
    """Run one shard into its own output file; returns its report."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, run_shard

    params = job_params(**locals())
    with refusing_bad_input():
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
) -> dict:
    """Merge the shards' outputs into the output; log Metrics and a Markdown summary."""
    from components.exit_codes import refusing_bad_input
    from components.inference.steps import job_params, merge_shards, report_markdown, report_metrics

    params = job_params(**locals())
    with refusing_bad_input():
        result = merge_shards(params, planned, shard_reports)
    for name, value in report_metrics(result).items():
        metrics.log_metric(name, value)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(report_markdown(result, params))
    return result


# --- the pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchComponents:
    """The pipeline's components: plan, one shard component per engine, merge."""

    plan: BaseComponent
    infer_shard: dict[str, BaseComponent]  # engine -> its shard component (its own image)
    merge: BaseComponent


def make_components(
    image: str, engines: tuple[str, ...], shard_images: dict[str, str] | None = None
) -> BatchComponents:
    """The components on ``image`` (the project's component image, kfp included); each engine's
    shard component, named ``infer-shard-<engine>``, on its image from ``shard_images``."""

    def wrap(func: Callable[..., Any], base_image: str, name: str | None = None) -> BaseComponent:
        # install_kfp_package=False: the image has kfp; no pip at run time, nothing downloaded.
        component: BaseComponent = dsl.component(
            func, base_image=base_image, install_kfp_package=False
        )
        if name is not None:  # one component per engine: its own executor, image, placement
            component.component_spec.name = name
        return component

    images = shard_images or {}
    shard_components = {
        engine: wrap(infer_shard, images.get(engine, image), shard_step(engine))
        for engine in engines
    }
    return BatchComponents(wrap(plan, image), shard_components, wrap(merge, image))


@dataclass(frozen=True)
class _Build:
    """What the pipeline function's tasks are built from."""

    job: JobSpec
    settings: Settings
    parts: BatchComponents
    placements: dict[str, Placement | None]  # engine -> its shard placement (cluster only)
    for_cluster: bool


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
    ) -> dict:
        args = dict(
            input=input, output=output, engine=engine, model=model, template=template,
            id_column=id_column, shards=shards, concurrency=concurrency, max_tokens=max_tokens,
            temperature=temperature, batch_size=batch_size,
        )  # fmt: skip

        planned = parts.plan(**args).set_display_name("plan shards")
        # Off: the input may change while the parameters stay the same.
        planned.set_caching_options(enable_caching=False)
        apply_retry(planned, retry_policy(job.retries.plan, for_cluster))
        if for_cluster:
            cluster_env(planned, settings, milvus=False)

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
