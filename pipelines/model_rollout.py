"""The ``model-rollout`` pipeline: stage, then the serve rollout or the collection rollout, inside
an exit handler that restores the previous model when the run did not succeed.

- ``stage``: the model into the store as name/version; the ``Model`` artifact records its
  version, sha256 digest and URI (the Kubeflow UI's lineage).
- targets ``rayservice`` and ``kserve`` (``dsl.If``), through the engine's rollout backend
  (ray-local, or the Kubernetes API): ``render`` the new entry (placed on the inventory; the
  previous one recorded in the history before anything is applied), ``baseline`` (the gate's
  requests against the old model), ``apply`` (and wait until the new version serves), ``gate``
  (``Metrics``, a ``Markdown`` table and an ``HTML`` report with plots, whether it passed or
  not), ``promote`` (fails when the gate did not pass).
- target ``collection`` (``dsl.Else``, app embeddings): the blue/green rollout behind the Milvus
  alias, its ``Metrics``/``Markdown``/``HTML``, then ``finish`` (fails when it rolled back).
- the exit task (``dsl.ExitHandler``, ``PipelineTaskFinalStatus``): the outcome of a run that
  succeeded (the pipeline's output); a run that did not, and whose rollout started, gets the
  previous entry back and waits until the old model serves again.

Every step is a few lines calling ``components.rollout.job_steps``/``job_backends``/
``job_collection``.

No ``from __future__ import annotations`` here: KFP reads the component functions' annotations
as parameter and artifact types.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl
from kfp.dsl import HTML, Markdown, Metrics, Model, Output
from kfp.dsl.base_component import BaseComponent

from components.registry import JobSpec, get_job
from components.rollout.job_params import JOB_NAME, STEP_RETRIES, ModelRolloutParams
from components.settings import Settings, get_settings
from pipelines.common import (
    apply_resources,
    apply_retry,
    cluster_env,
    default,
    make_component,
    retry_policy,
)

PIPELINE_NAME = JOB_NAME


# --- components: thin wrappers over components.rollout.job_* ---------------------------------


def rollout_stage(
    model: str,
    app: str,
    version: str,
    name: str,
    target: str,
    engine: str,
    canary: int,
    memory_gb: float,
    gpu_fraction: float,
    min_success_rate: float,
    max_p95_ms: float,
    max_quality_drop: float,
    min_quality: float,
    labelled_set: str,
    rounds: int,
    queries: str,
    sources: list,
    alias: str,
    keep: int,
    keep_failed: bool,
    top_k: int,
    max_recall_drop: float,
    max_mrr_drop: float,
    milvus_uri: str,
    staged_model: Output[Model],
    traceparent: str = "",
) -> str:
    """Check the parameters, stage the model; {"params", "staged"} (JSON); the Model artifact."""
    values = {k: v for k, v in locals().items() if k not in ("staged_model", "traceparent")}
    import json

    from components.exit_codes import refusing_bad_input
    from components.rollout.job_params import read_params
    from components.rollout.job_steps import stage_step
    from components.tracing import join_trace

    join_trace(traceparent)
    with refusing_bad_input("rollout stage"):  # exits 2 with one line: "bad input: ..."
        params = read_params(values).model_dump(mode="json")
        staged = stage_step(params)
    staged_model.metadata.update(
        {"version": staged["version"], "sha256": staged["digest"], "uri": staged["uri"]}
    )
    with open(staged_model.path, "w", encoding="utf-8") as out:
        json.dump(staged, out, indent=2, sort_keys=True)
    return json.dumps({"params": params, "staged": staged})


def rollout_render(stage: str, traceparent: str = "") -> str:
    """The new entry, recorded in the history (with the previous one) before anything is
    applied; refused (exit 2) when the cluster would refuse it."""
    import json

    from components.exit_codes import refusing_bad_input
    from components.rollout.job_backends import plan_step
    from components.tracing import join_trace

    join_trace(traceparent)
    run = json.loads(stage)
    with refusing_bad_input("rollout render"):
        return json.dumps(plan_step(run["params"], run["staged"]))


def rollout_baseline(stage: str, plan: str, traceparent: str = "") -> str:
    """The gate's requests against the model being replaced ({} when none serves)."""
    import json

    from components.rollout.job_backends import baseline_step
    from components.tracing import join_trace

    join_trace(traceparent)
    return json.dumps(baseline_step(json.loads(stage)["params"], json.loads(plan)))


def rollout_apply(stage: str, plan: str, traceparent: str = "") -> str:
    """Apply the change and wait until the new version serves."""
    import json

    from components.rollout.job_backends import apply_step
    from components.tracing import join_trace

    join_trace(traceparent)
    return json.dumps(apply_step(json.loads(stage)["params"], json.loads(plan)))


def rollout_gate(
    stage: str,
    plan: str,
    baseline: str,
    applied: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
    report: Output[HTML],
    traceparent: str = "",
) -> str:
    """The gate against the baseline: its Metrics, Markdown and HTML report, pass or not."""
    import json

    from components.rollout.job_steps import gate_documents, gate_metrics, gate_step
    from components.tracing import join_trace

    join_trace(traceparent)
    params, route = json.loads(stage)["params"], json.loads(applied)["route"]
    result = gate_step(params, json.loads(plan), json.loads(baseline) or None, route)
    for name, value in gate_metrics(result).items():
        metrics.log_metric(name, value)
    markdown = gate_documents(result, report.path)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(markdown)
    return json.dumps(result)


def rollout_promote(stage: str, plan: str, gate: str, traceparent: str = "") -> str:
    """Promote; fails when the gate did not pass (the exit task rolls back)."""
    import json

    from components.rollout.job_backends import promote_step
    from components.rollout.job_steps import exiting_on_gate_failure
    from components.tracing import join_trace

    join_trace(traceparent)
    with exiting_on_gate_failure():
        result = promote_step(json.loads(stage)["params"], json.loads(plan), json.loads(gate))
    return json.dumps(result)


def rollout_collection(
    stage: str,
    metrics: Output[Metrics],
    summary: Output[Markdown],
    report: Output[HTML],
    traceparent: str = "",
) -> str:
    """The embeddings app's model rolled out behind the Milvus alias; its gate's documents."""
    import json

    from components.exit_codes import refusing_bad_input
    from components.rollout.job_collection import collection_metrics, collection_step
    from components.rollout.job_steps import gate_documents
    from components.tracing import join_trace

    join_trace(traceparent)
    run = json.loads(stage)
    with refusing_bad_input("rollout collection"):
        result = collection_step(run["params"], run["staged"])
    for name, value in collection_metrics(result).items():
        metrics.log_metric(name, value)
    markdown = gate_documents(result["gate"], report.path)
    with open(summary.path, "w", encoding="utf-8") as out:
        out.write(markdown)
    return json.dumps(result)


def rollout_finish(stage: str, result: str, traceparent: str = "") -> str:
    """The collection rollout's outcome; fails when it rolled back."""
    import json

    from components.rollout.job_collection import collection_outcome
    from components.rollout.job_steps import exiting_on_gate_failure
    from components.tracing import join_trace

    join_trace(traceparent)
    with exiting_on_gate_failure():
        outcome = collection_outcome(json.loads(stage)["params"], json.loads(result))
    return json.dumps(outcome)


def rollout_conclude(
    model: str,
    app: str,
    version: str,
    name: str,
    target: str,
    engine: str,
    status: dsl.PipelineTaskFinalStatus,
    traceparent: str = "",
) -> dict:
    """The exit task: the outcome of a run that succeeded (the pipeline's output, without
    nulls, which KFP cannot pass); a run that did not gets its previous model back."""
    from components.rollout.job_backends import conclude_step
    from components.rollout.job_steps import without_nulls
    from components.tracing import join_trace

    join_trace(traceparent)
    values = dict(model=model, app=app, version=version, name=name, target=target, engine=engine)
    return without_nulls(conclude_step(values, status.state, status.error_message or ""))


# --- the pipeline ---------------------------------------------------------------------------

STEPS = (
    rollout_stage,
    rollout_render,
    rollout_baseline,
    rollout_apply,
    rollout_gate,
    rollout_promote,
    rollout_collection,
    rollout_finish,
    rollout_conclude,
)


def make_components(image: str, for_cluster: bool) -> dict[str, BaseComponent]:
    """The components on ``image`` (the project's component image), by step name."""
    return {
        func.__name__.removeprefix("rollout_"): make_component(func, image, for_cluster)
        for func in STEPS
    }


def _configure(
    task: dsl.PipelineTask, name: str, job: JobSpec, settings: Settings, for_cluster: bool
) -> None:
    """Display name, no caching (every step reads or changes what serves), retries, env."""
    task.set_display_name(name)
    task.set_caching_options(enable_caching=False)
    if name in STEP_RETRIES:
        policy = getattr(job.retries, STEP_RETRIES[name])
        apply_retry(task, retry_policy(policy, for_cluster))
    if for_cluster:
        apply_resources(task, job, name, settings)
        cluster_env(task, settings, milvus=name == "collection", run_data=name == "collection")
        task.set_env_variable("LLMW_MODEL_STORE_URI", settings.cluster_model_store_uri)


def _rollout_tasks(
    parts: dict[str, BaseComponent],
    setup: Callable[[dsl.PipelineTask, str], dsl.PipelineTask],
    values: dict[str, Any],
    target: Any,
    traceparent: Any,
) -> Any:
    """The rollout's tasks inside the pipeline; returns the exit task's output."""
    identity = {k: values[k] for k in ("model", "app", "version", "name", "target", "engine")}
    t = {"traceparent": traceparent}  # every task joins the run's trace
    concluded = setup(parts["conclude"](**identity, **t), "conclude")
    with dsl.ExitHandler(concluded, name="rollout"):
        run = setup(parts["stage"](**values, **t), "stage").outputs["Output"]
        with dsl.If(target != "collection", name="serve-rollout"):
            plan = setup(parts["render"](stage=run, **t), "render").output
            measured = setup(parts["baseline"](stage=run, plan=plan, **t), "baseline")
            applied = setup(parts["apply"](stage=run, plan=plan, **t), "apply").after(measured)
            gated = setup(
                parts["gate"](
                    stage=run, plan=plan, baseline=measured.output, applied=applied.output, **t
                ),
                "gate",
            )
            promoted = parts["promote"](stage=run, plan=plan, gate=gated.outputs["Output"], **t)
            setup(promoted, "promote")
        with dsl.Else(name="collection-rollout"):
            built = setup(parts["collection"](stage=run, **t), "collection")
            setup(parts["finish"](stage=run, result=built.outputs["Output"], **t), "finish")
    # The exit task reads back the outcome the last step kept: a pipeline's output cannot come
    # from inside an ExitHandler.
    return concluded.output


def build_pipeline(settings: Settings | None = None, *, for_cluster: bool = True) -> BaseComponent:
    """The ``model-rollout`` pipeline for ``settings`` (the process's by default);
    ``for_cluster=False`` is the variant kfp.local runs (short backoff, the user's settings)."""
    settings = settings or get_settings()
    job = get_job(PIPELINE_NAME)
    parts = make_components(settings.component_image, for_cluster)

    def setup(task: dsl.PipelineTask, name: str) -> dsl.PipelineTask:
        _configure(task, name, job, settings, for_cluster)
        return task

    def d(field: str) -> Any:
        return default(ModelRolloutParams, field)

    @dsl.pipeline(name=PIPELINE_NAME, description=job.description)
    def model_rollout(
        model: str,
        app: str,
        version: str,
        name: str = d("name"),
        target: str = d("target"),
        engine: str = d("engine"),
        canary: int = d("canary"),
        memory_gb: float = d("memory_gb"),
        gpu_fraction: float = d("gpu_fraction"),
        min_success_rate: float = d("min_success_rate"),
        max_p95_ms: float = d("max_p95_ms"),
        max_quality_drop: float = d("max_quality_drop"),
        min_quality: float = d("min_quality"),
        labelled_set: str = d("labelled_set"),
        rounds: int = d("rounds"),
        queries: str = d("queries"),
        sources: list = d("sources"),
        alias: str = d("alias"),
        keep: int = d("keep"),
        keep_failed: bool = d("keep_failed"),
        top_k: int = d("top_k"),
        max_recall_drop: float = d("max_recall_drop"),
        max_mrr_drop: float = d("max_mrr_drop"),
        milvus_uri: str = d("milvus_uri"),
        traceparent: str = "",
    ) -> dict:
        scope = dict(locals())  # the parameters (and the closure's names: left out)
        values = {key: scope[key] for key in ModelRolloutParams.model_fields}
        output: dict = _rollout_tasks(parts, setup, values, target, traceparent)
        return output

    return model_rollout
