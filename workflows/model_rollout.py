"""The ``model-rollout`` WorkflowTemplate: stage -> read the RayService -> render -> baseline ->
apply (a ``resource`` patch that waits on the app's status) -> gate -> promote, with an exit
handler that restores the previous entry when the run did not succeed.

- ``stage`` (every target): the model into the store as name/version; its result (the checked
  parameters and what was staged) feeds the steps after it.
- target ``rayservice``: ``read-rayservice`` (a ``get`` resource step: the RayService's spec and
  resourceVersion), ``render`` (the app's new entry, placed, checked against what the cluster
  would refuse; ``started`` recorded with the previous entry; outputs the serveConfigV2 to patch
  in and the apply step's conditions), ``baseline`` (the gate's requests against the old
  model), ``apply`` (a JSON merge patch of ``spec.serveConfigV2`` carrying the resourceVersion
  read, ``successCondition`` on ``status.activeServiceStatus.applicationStatuses.<app>.status ==
  RUNNING``, ``failureCondition`` on ``DEPLOY_FAILED``), ``gate`` (waits until the route answers
  with the new version; the Markdown summary and an HTML report with plots as artifacts),
  ``promote`` (exits 3 when the gate did not pass).
- target ``collection`` (app embeddings): the blue/green rollout behind the Milvus alias.
- ``outcome``: the kept outcome, the entrypoint's ``report``.
- the exit handler: ``record-status``, then, when the workflow did not succeed (target
  rayservice), ``restore``: read the RayService again, put back the entry the run's ``started``
  recorded, wait until the old version answers, record ``rolled_back``.

Target ``kserve`` is refused here (exit 2): its canary runs in the KFP pipeline or with
``llmw rollout start --target kserve --engine kubernetes``; so is engine ``ray-local`` (the
resource steps go to the Kubernetes API; the KFP pipeline runs on ray-local). The step
functions are a few lines calling ``components.rollout.job_steps``/``job_argo``/
``job_collection``; the template is built in ``workflows.model_rollout_template``.

No ``from __future__ import annotations`` here: Hera reads the step functions' annotations to
build each template's inputs and outputs.
"""

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

from hera.workflows import Artifact, Parameter

from components.exit_codes import refusing_bad_input
from components.rollout.job_params import JOB_NAME
from workflows import common

TEMPLATE_NAME = JOB_NAME
REPORT_ARTIFACT = "report"
Summary = Annotated[Path, Artifact(name=common.SUMMARY_ARTIFACT, output=True)]
Report = Annotated[Path, Artifact(name=REPORT_ARTIFACT, output=True)]


# --- steps: thin wrappers over components.rollout.job_* ----------------------------------------


def stage(
    model: str,
    app: str,
    version: str,
    name: str,
    target: str,
    engine: str,
    canary: str,
    memory_gb: str,
    gpu_fraction: str,
    min_success_rate: str,
    max_p95_ms: str,
    max_quality_drop: str,
    min_quality: str,
    labelled_set: str,
    rounds: str,
    queries: str,
    sources: str,
    alias: str,
    keep: str,
    keep_failed: str,
    top_k: str,
    max_recall_drop: str,
    max_mrr_drop: str,
    milvus_uri: str,
) -> dict[str, Any]:
    """Check the parameters and stage the model; ``{"params", "staged"}``."""
    values: dict[str, Any] = dict(locals())
    from components.rollout.job_params import read_params
    from components.rollout.job_steps import stage_step

    # stdout is the step's result: what a library prints goes to the log (stderr) instead.
    with refusing_bad_input("rollout stage"), contextlib.redirect_stdout(sys.stderr):
        values["sources"] = json.loads(sources or "[]")
        params = read_params(values).model_dump(mode="json")
        if params["target"] == "kserve":
            raise ValueError(
                "target kserve: the WorkflowTemplate rolls out onto the RayService; run the "
                "KServe canary with the KFP pipeline or llmw rollout start --engine kubernetes"
            )
        if params["target"] == "rayservice" and params["engine"] == "ray-local":
            raise ValueError(
                "engine ray-local: the WorkflowTemplate patches the RayService through the "
                "Kubernetes API; on ray-local run the KFP pipeline (--engine kfp-local)"
            )
        return {"params": params, "staged": stage_step(params)}


def render(
    stage: str,
    spec: str,
    resource_version: str,
    generation: str,
    serve_config: Annotated[Path, Parameter(name="serve-config", output=True)],
    success_condition: Annotated[Path, Parameter(name="success-condition", output=True)],
    failure_condition: Annotated[Path, Parameter(name="failure-condition", output=True)],
) -> dict[str, Any]:
    """The change, from the RayService read; its serveConfigV2 and the apply step's conditions
    as outputs, ``started`` recorded before anything is applied."""
    from components.rollout.job_argo import render_step, resource_conditions

    run = json.loads(stage)
    with refusing_bad_input("rollout render"), contextlib.redirect_stdout(sys.stderr):
        plan, text = render_step(run["params"], run["staged"], spec, resource_version)
    # A patch that changes the spec makes the next generation.
    success, failure = resource_conditions(plan["app"], int(generation) + plan["changed"])
    serve_config.write_text(text, encoding="utf-8")
    success_condition.write_text(success, encoding="utf-8")
    failure_condition.write_text(failure, encoding="utf-8")
    return plan


def baseline(stage: str, plan: str) -> dict[str, Any]:
    """The gate's requests against the model being replaced ({} when it does not answer)."""
    from components.rollout.job_argo import baseline_step

    with contextlib.redirect_stdout(sys.stderr):
        return baseline_step(json.loads(stage)["params"], json.loads(plan))


def gate(stage: str, plan: str, baseline: str, summary: Summary, report: Report) -> dict[str, Any]:
    """Wait until the new version answers, gate it; the summary and the HTML report, pass or
    not."""
    from components.rollout.job_argo import argo_gate_step
    from components.rollout.job_steps import gate_documents

    with contextlib.redirect_stdout(sys.stderr):
        result = argo_gate_step(json.loads(stage)["params"], json.loads(plan), json.loads(baseline))
        report.parent.mkdir(parents=True, exist_ok=True)
        common.write_summary(summary, gate_documents(result, str(report)))
    return result


def promote(stage: str, plan: str, gate: str) -> dict[str, Any]:
    """``promoted`` when the gate passed; exits 3 when not (the exit handler restores)."""
    from components.rollout.job_argo import promote_step
    from components.rollout.job_steps import exiting_on_gate_failure

    with exiting_on_gate_failure(), contextlib.redirect_stdout(sys.stderr):
        return promote_step(json.loads(stage)["params"], json.loads(plan), json.loads(gate))


def collection(stage: str, summary: Summary, report: Report) -> dict[str, Any]:
    """The embeddings app's model behind the Milvus alias; exits 3 when it rolled back."""
    from components.rollout.job_collection import collection_outcome, collection_step
    from components.rollout.job_steps import exiting_on_gate_failure, gate_documents

    run = json.loads(stage)
    with refusing_bad_input("rollout collection"), contextlib.redirect_stdout(sys.stderr):
        result = collection_step(run["params"], run["staged"])
        report.parent.mkdir(parents=True, exist_ok=True)
        common.write_summary(summary, gate_documents(result["gate"], str(report)))
    with exiting_on_gate_failure(), contextlib.redirect_stdout(sys.stderr):
        return collection_outcome(run["params"], result)


def outcome(stage: str) -> dict[str, Any]:
    """The outcome the run's deciding step kept: the run's report."""
    from components.rollout.job_steps import read_outcome

    return read_outcome(json.loads(stage)["params"])


def restore_plan(
    model: str,
    app: str,
    version: str,
    name: str,
    target: str,
    engine: str,
    status: str,
    spec: str,
    resource_version: str,
    action: Annotated[Path, Parameter(name="action", output=True)],
    serve_config: Annotated[Path, Parameter(name="serve-config", output=True)],
) -> dict[str, str]:
    """The exit handler: ``restore`` and the serveConfigV2 to patch back in, or ``none``."""
    from components.rollout.job_argo import restore_plan as plan_restore

    values = dict(model=model, app=app, version=version, name=name, target=target, engine=engine)
    with contextlib.redirect_stdout(sys.stderr):
        what, text = plan_restore(values, status, spec, resource_version)
    action.write_text(what, encoding="utf-8")
    serve_config.write_text(text, encoding="utf-8")
    return {"action": what, "status": status}


def restored(
    model: str, app: str, version: str, name: str, target: str, engine: str, reason: str
) -> dict[str, Any]:
    """After the restore patch: wait until the old version answers; ``rolled_back``."""
    from components.rollout.job_argo import restored_step

    values = dict(model=model, app=app, version=version, name=name, target=target, engine=engine)
    with contextlib.redirect_stdout(sys.stderr):
        return restored_step(values, reason)


def record_status(workflow: str, status: str) -> dict[str, str]:
    """The exit handler's first step: record how the run ended (in its log and as its result)."""
    return common.record_status(TEMPLATE_NAME, workflow, status)
