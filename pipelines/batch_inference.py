"""The ``batch-inference`` pipeline: plan shards -> run each shard (ParallelFor) -> merge.

Each component is a few lines: it imports its step from ``components.inference.steps`` and calls it.
KFP copies a component function's source verbatim into the compiled YAML and runs it in the
component image, where this project is installed, so the bodies import what they need inside.

Where a shard runs depends on the ``engine`` parameter
(``components.inference.steps.ENGINE_NEEDS``): vLLM on its GPU (khelben in the shipped
inventory), transformers on the CPU, openai anywhere.
A task's placement is fixed when the pipeline compiles, so the pipeline has one branch per engine
(``dsl.If``/``Elif``/``Else`` on ``engine``), each a ParallelFor of its own shard task and a merge
of its shards; the pipeline's output is the merge that ran (``dsl.OneOf``).

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfp import dsl, kubernetes
from kfp.dsl import Markdown, Metrics, Output
from kfp.dsl.base_component import BaseComponent

from components.cluster.placement import Placement
from components.inference.steps import shard_placement
from components.settings import LLM_SECRET_KEY, Settings, get_settings
from pipelines.ingestion import RetryPolicy, apply_placement, apply_retry, cluster_env

PIPELINE_NAME = "batch-inference"
PIPELINE_DESCRIPTION = (
    "Prompts (an OpenAI batch file, or a JSONL/CSV/Parquet dataset with a template) through "
    "vLLM, an OpenAI-compatible endpoint or transformers, into JSONL results; resumable."
)
# Branch order: dsl.If, dsl.Elif, then dsl.Else for the last (KFP's OneOf needs an Else branch;
# the parameter model admits these three engines only).
ENGINES = ("vllm", "openai", "transformers")
# How many shards run at once. GPU shards queue on the scheduler for the one GPU that runs them;
# openai shards share the endpoint's capacity.
SHARD_PARALLELISM = 4
# Locally one at a time: each shard loads the model, and the machine is small.
LOCAL_SHARD_PARALLELISM = 1


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
    from components.inference.steps import job_params, plan_shards

    params = job_params(**locals())
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
    from components.inference.steps import job_params, run_shard

    params = job_params(**locals())
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
    from components.inference.steps import job_params, merge_shards, report_markdown, report_metrics

    params = job_params(**locals())
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


def make_components(image: str, shard_images: dict[str, str] | None = None) -> BatchComponents:
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
        engine: wrap(infer_shard, images.get(engine, image), f"infer-shard-{engine}")
        for engine in ENGINES
    }
    return BatchComponents(wrap(plan, image), shard_components, wrap(merge, image))


# A failed plan or merge usually means MinIO blinked; a failed shard, the engine or its node.
# Reruns are safe: a shard resumes from what its output holds, and the merge rewrites the output
# whole. Locally the same retries run with a short backoff.
CLUSTER_RETRY = {
    "plan": RetryPolicy(3, "30s", 2.0, "600s"),
    "shard": RetryPolicy(3, "60s", 2.0, "1800s"),
    "merge": RetryPolicy(2, "30s", 2.0, "600s"),
}
LOCAL_RETRY = {
    name: RetryPolicy(policy.retries, "1s", 1.0, "5s") for name, policy in CLUSTER_RETRY.items()
}


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``batch-inference`` pipeline for ``settings`` (the process's settings by default).

    ``for_cluster=False`` builds the variant that ``kfp.local`` runs: the same components, DAG,
    caching and retries (with a short backoff), shards one at a time, and no in-cluster
    environment (secrets, GPU variables), so that the user's own ``LLMW_*`` settings apply.
    """
    settings = settings or get_settings()
    placements = shard_placements(settings) if for_cluster else {}
    # Each engine's shards run on its placement's image (vLLM's for its GPU stack, the
    # project's CPU image for transformers); openai shards and the rest on the component image.
    parts = make_components(
        settings.component_image,
        {engine: p.image for engine, p in placements.items() if p is not None},
    )
    retry = CLUSTER_RETRY if for_cluster else LOCAL_RETRY
    parallelism = SHARD_PARALLELISM if for_cluster else LOCAL_SHARD_PARALLELISM

    @dsl.pipeline(name=PIPELINE_NAME, description=PIPELINE_DESCRIPTION)
    def batch_inference(
        input: str,
        output: str,
        model: str,
        engine: str = "transformers",
        template: str = "",
        id_column: str = "",
        shards: int = 1,
        concurrency: int = 8,
        max_tokens: int = 64,
        temperature: float = 0.0,
        batch_size: int = 8,
    ) -> dict:
        args = dict(
            input=input, output=output, engine=engine, model=model, template=template,
            id_column=id_column, shards=shards, concurrency=concurrency, max_tokens=max_tokens,
            temperature=temperature, batch_size=batch_size,
        )  # fmt: skip

        planned = parts.plan(**args).set_display_name("plan shards")
        # Off: the input may change while the parameters stay the same.
        planned.set_caching_options(enable_caching=False)
        apply_retry(planned, retry["plan"])
        if for_cluster:
            cluster_env(planned, settings, milvus=False)

        merged_reports = []
        for index, name in enumerate(ENGINES):
            if index == 0:
                branch: Any = dsl.If(engine == name, name=f"{name} engine")
            elif index < len(ENGINES) - 1:
                branch = dsl.Elif(engine == name, name=f"{name} engine")
            else:
                branch = dsl.Else(name=f"{name} engine")
            with branch:
                with dsl.ParallelFor(planned.output, parallelism=parallelism) as shard:
                    ran = parts.infer_shard[name](**args, shard=shard)
                    ran.set_display_name(f"infer shard ({name})")
                    # Off: what a shard writes depends on its output file, outside KFP's key.
                    ran.set_caching_options(enable_caching=False)
                    apply_retry(ran, retry["shard"])
                merged = parts.merge(
                    **args, planned=planned.output, shard_reports=dsl.Collected(ran.output)
                ).set_display_name("merge")
                # Off: it must merge and report this run's shards, never an earlier run's.
                merged.set_caching_options(enable_caching=False)
                apply_retry(merged, retry["merge"])
                if for_cluster:
                    cluster_env(ran, settings, milvus=False)
                    cluster_env(merged, settings, milvus=False)
                    placement = placements[name]
                    if placement is not None:
                        apply_placement(ran, placement)
                    if name == "openai":  # the endpoint's key, when it has one
                        kubernetes.use_secret_as_env(
                            ran,
                            secret_name=settings.llm_credentials_secret,
                            secret_key_to_env={LLM_SECRET_KEY: LLM_SECRET_KEY},
                            optional=True,
                        )
                merged_reports.append(merged.outputs["Output"])
        output_report: dict = dsl.OneOf(*merged_reports)
        return output_report

    return batch_inference


def shard_placements(settings: Settings) -> dict[str, Placement | None]:
    """Each engine's shard placement (None: no GPU, no node). PlacementError/InventoryError say
    why one cannot be placed."""
    return {engine: shard_placement(engine, settings) for engine in ENGINES}
