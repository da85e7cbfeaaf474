"""The KFP pipeline's ``model-rollout`` steps: ``rollout_flow``'s course, one step per task,
through the engine's ``Backend`` (``local_rollout.RayLocalBackend`` on ray-local;
``kube_rollout.backend_for`` on kubernetes: the RayService, or a KServe InferenceService).

``plan_step`` reads what serves, makes the new entry (refusing what the cluster would refuse)
and records ``started`` with the previous entry before anything is applied (an interrupted
earlier rollout is recovered first, as ``rollout_flow.start`` does); ``baseline_step`` measures
the old model; ``apply_step`` applies and waits until the new entry serves; the gate is
``job_steps.gate_step``; ``promote_step`` promotes (a KServe canary taken to all traffic) or
fails when the gate did not pass; ``conclude_step``, the exit task, reports the kept outcome of
a run that succeeded and restores the previous entry of one that did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.rollout import rollout_flow
from components.rollout.job_params import ModelRolloutParams, read_params
from components.rollout.job_steps import (
    ROLLED_BACK,
    check_gate,
    job_settings,
    measure_side,
    memory_gb,
    model_ref,
    pending_start,
    read_outcome,
    record_promoted,
    record_rolled_back,
    record_started,
    rollout_request,
)

if TYPE_CHECKING:
    from components.settings import Settings

SUCCEEDED = "SUCCEEDED"  # KFP's final state of a run that succeeded


def backend(params: ModelRolloutParams, settings: Settings) -> rollout_flow.Backend:
    """The engine's backend for the run's application and target."""
    if params.engine == "ray-local":
        from components.rollout.local_rollout import RayLocalBackend

        return RayLocalBackend(settings, params.app)
    from components.rollout.kube_rollout import backend_for

    return backend_for(settings, params.app, params.target)


def plan_step(values: Mapping[str, Any], staged: Mapping[str, Any]) -> dict[str, Any]:
    """The new entry for the staged model, ``started`` recorded; the plan the steps pass on."""
    params = read_params(values)
    settings = job_settings()
    engine = backend(params, settings)
    engine.check()
    recovered = rollout_flow.recover(engine, params.store_name, settings)
    before = engine.current()
    entry = engine.change(
        model_ref(staged), memory_gb(params, staged, settings), rollout_request(params)
    )
    plan = {
        "app": engine.app.name,
        "engine": engine.engine,
        "target": engine.target,
        "name": params.store_name,
        "version": params.version,
        "previous_version": engine.version(before),
        "previous_entry": before,
        "entry": entry,
        "recovered": recovered,
    }
    record_started(plan, settings)
    return plan


def baseline_step(values: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The old model's side of the gate, measured before the change ({} when none serves)."""
    engine = backend(read_params(values), job_settings())
    if plan.get("previous_entry") is None or not engine.serving():
        return {}
    return measure_side(values, engine.route(), "old")


def apply_step(values: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """Apply the new entry and wait until it serves (NotServing, or the engine's error)."""
    settings = job_settings()
    engine = backend(read_params(values), settings)
    engine.apply(plan["entry"])
    ready = engine.wait_serving(plan["entry"], settings.rollout_ready_timeout_s)
    return {"ready_s": round(ready, 2), "route": engine.route()}


def promote_step(
    values: Mapping[str, Any], plan: Mapping[str, Any], report: Mapping[str, Any]
) -> dict[str, Any]:
    """Promote when the gate passed (GateFailedError when not); the run's outcome."""
    check_gate(report)
    settings = job_settings()
    engine = backend(read_params(values), settings)
    entry = engine.promote(plan["entry"], settings.rollout_ready_timeout_s)
    return record_promoted(values, plan, report, entry)


def conclude_step(values: Mapping[str, Any], state: str, reason: str) -> dict[str, Any]:
    """The exit task: the kept outcome of a run that succeeded; for one that did not and whose
    rollout started, the previous entry restored (the old model serving again) and recorded."""
    if state == SUCCEEDED:
        return read_outcome(values)
    params = read_params(values)
    result: dict[str, Any] = {"outcome": "failed", "state": state, "reason": reason}
    if params.target == "collection":  # the embedding rollout restores the alias itself
        return result
    settings = job_settings()
    started = pending_start(values, settings)
    if started is None:  # refused before anything was applied
        return result
    engine = backend(params, settings)
    timeout = settings.rollout_ready_timeout_s
    seconds = rollout_flow.restore(engine, started.get("previous_entry"), timeout)
    recorded = record_rolled_back(params.store_name, started, reason, settings)
    restored = {"serving": recorded["serving"], "restore_s": seconds, "reason": recorded["reason"]}
    return {**result, "outcome": ROLLED_BACK, **restored}
