"""What the ``model-rollout`` job's steps share, on both engines: staging, the gate, the history
events, the outcome a run reports.

A step takes the job's parameters (a mapping: ``job_params.read_params``) and the JSON-ready data
the step before returned, and returns JSON-ready data. The rollout logic is
``components.rollout``'s (staging, the backends and ``rollout_flow``, gate, history): these are
the seams the pipelines cut it at, so that a KFP task or an Argo step is one of them. The KFP
pipeline's steps go through a ``rollout_flow.Backend`` (``job_backends``); the WorkflowTemplate's
around its ``resource`` templates (``job_argo``); the collection target is ``job_collection``.

History events are the ones ``rollout_flow`` writes (``started`` before anything is applied,
``gate``, ``promoted``, ``rolled_back``), so ``llmw rollout status|history|undo`` read a run's
rollout like one of ``llmw rollout start``. A step that refuses its input raises a ValueError
(the engines' wrappers exit 2: not retried); a gate that failed makes the deciding step raise
``GateFailedError`` so that the run fails and its exit handler restores the previous model.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from components.rollout.job_params import JOB_NAME, ModelRolloutParams, read_params

if TYPE_CHECKING:
    from components.rollout.gate import GateThresholds, SideResult
    from components.rollout.plan import RolloutRequest, Target
    from components.settings import Settings

PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
# The exit code of a deciding step whose gate failed (the run then rolls back): what
# `llmw rollout start` exits with when its gate failed and it rolled back.
EXIT_ROLLED_BACK = 3


class GateFailedError(RuntimeError):
    """The new model failed its gate: the run fails, and its exit handler rolls back."""


@contextmanager
def exiting_on_gate_failure() -> Iterator[None]:
    """Around an engine step that decides: a failed gate ends the process with
    ``EXIT_ROLLED_BACK`` after one line on stderr, ``error: gate failed: …`` (not retried)."""
    try:
        yield
    except GateFailedError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_ROLLED_BACK) from None


def without_nulls(value: Any) -> Any:
    """``value`` without its null members, at any depth (KFP passes no nulls in a struct)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


def job_settings() -> Settings:
    from components.settings import get_settings

    return get_settings()


def stage_step(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stage the model into the store as name/version; what the ``Model`` artifact records."""
    from components.rollout.catalog import load_catalog
    from components.rollout.staging import stage_model

    params = read_params(values)
    settings = job_settings()
    app = load_catalog(settings.serving_catalog).app(params.app)  # UnknownAppError: refused
    staged = stage_model(params.model, params.store_name, params.version, settings)
    return {
        "app": app.name,
        "route": app.route_prefix,
        "name": params.store_name,
        "version": params.version,
        "source": params.model,
        **staged.summary(),
        "uri": staged.uri,
    }


def rollout_request(params: ModelRolloutParams) -> RolloutRequest:
    """The parameters as ``llmw rollout start`` asks (no node: a request never pins one)."""
    from components.rollout.plan import RolloutRequest

    target: Target = "kserve" if params.target == "kserve" else "rayservice"
    return RolloutRequest(
        source=params.model,
        app=params.app,
        version=params.version,
        name=params.name,
        target=target,
        canary=params.canary or None,
        memory_gb=params.memory_gb or None,
        gpu_fraction=params.gpu_fraction or None,
    )


def memory_gb(params: ModelRolloutParams, staged: Mapping[str, Any], settings: Settings) -> float:
    """The GPU memory the model needs: as given, or its weights times the settings' factor."""
    from components.rollout.application import memory_need_gb

    weights = int(staged["weights_bytes"])
    return params.memory_gb or memory_need_gb(weights, settings.rollout_memory_factor)


def model_ref(staged: Mapping[str, Any]) -> Any:
    from components.rollout.application import ModelRef

    return ModelRef(str(staged["uri"]), str(staged["version"]), str(staged["digest"]))


def event(plan: Mapping[str, Any], kind: str, **data: Any) -> dict[str, Any]:
    """A history event of this rollout, as ``rollout_flow`` writes them."""
    return {
        "app": plan["app"],
        "engine": plan["engine"],
        "target": plan["target"],
        "version": plan["version"],
        "previous_version": plan.get("previous_version"),
        "event": kind,
        **data,
    }


def record_started(plan: Mapping[str, Any], settings: Settings) -> None:
    """``started``, with the previous entry: written before anything is applied."""
    from components.rollout import history

    started = event(plan, "started", previous_entry=plan.get("previous_entry"), entry=plan["entry"])
    history.append_event(plan["name"], started, settings)


def _side(data: Mapping[str, Any] | None) -> SideResult | None:
    from components.rollout.gate import SideResult

    if not data:
        return None
    known = {f.name for f in fields(SideResult)}
    return SideResult(**{k: v for k, v in data.items() if k in known})


def measure_side(values: Mapping[str, Any], route_url: str, label: str) -> dict[str, Any]:
    """The gate's smoke requests against one side (``route_url``: the app's route)."""
    from components.rollout import gate

    params = read_params(values)
    labelled = gate.load_labelled_set(params.labelled_set)
    side = gate.measure(params.app, route_url, label, labelled, params.rounds)
    return {f.name: getattr(side, f.name) for f in fields(side)}


def thresholds(params: ModelRolloutParams) -> GateThresholds:
    from components.rollout.gate import GateThresholds

    return GateThresholds(
        min_success_rate=params.min_success_rate,
        max_p95_ms=params.max_p95_ms or None,
        max_quality_drop=params.max_quality_drop,
        min_quality=params.min_quality or None,
    )


def gate_step(
    values: Mapping[str, Any],
    plan: Mapping[str, Any],
    baseline: Mapping[str, Any] | None,
    route_url: str,
) -> dict[str, Any]:
    """Measure the new model at ``route_url``, decide against the baseline, and record the
    gate in the history whether it passed or not; the report as JSON, with its table."""
    from components.rollout import gate, history

    new = _side(measure_side(values, route_url, "new"))
    assert new is not None
    report = gate.decide(plan["app"], _side(baseline), new, thresholds(read_params(values)))
    history.append_event(plan["name"], event(plan, "gate", gate=report.to_json()), job_settings())
    return {**report.to_json(), "table": report.table()}


def gate_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """The gate's numbers as Kubeflow Metrics: the new side's, the old side's, the decision."""
    metrics = {"passed": 1.0 if report["passed"] else 0.0}
    for side in ("new", "old"):
        figures = report.get(side) or {}
        for name in ("success_rate", "p50_ms", "p95_ms", "quality"):
            if name in figures:
                metrics[f"{side}_{name}"] = float(figures[name])
    return metrics


def gate_documents(report: Mapping[str, Any], html_path: str | None = None) -> str:
    """The gate's Markdown; with ``html_path``, its HTML page (plots) written there too."""
    from components.rollout.gate_report import gate_markdown, write_gate_report

    if html_path is not None:
        write_gate_report(dict(report), html_path)
    return gate_markdown(dict(report))


def check_gate(report: Mapping[str, Any]) -> None:
    """GateFailedError (the run fails, its exit handler rolls back) unless the gate passed."""
    if not report["passed"]:
        raise GateFailedError("gate failed: " + "; ".join(report["reasons"]))


def record_promoted(
    values: Mapping[str, Any],
    plan: Mapping[str, Any],
    report: Mapping[str, Any],
    entry: Any,
) -> dict[str, Any]:
    """``promoted`` in the history (``entry``: what serves after promotion); the run's kept
    outcome."""
    from components.rollout import history

    settings = job_settings()
    promoted = event(
        plan,
        "promoted",
        serving=plan["version"],
        previous_entry=plan.get("previous_entry"),
        entry=entry,
    )
    history.append_event(plan["name"], promoted, settings)
    result = outcome(read_params(values), PROMOTED, plan=plan, gate=report)
    return store_outcome(result, settings)


def failure_reason(events: list[dict[str, Any]], version: str, fallback: str) -> str:
    """Why this rollout failed: its gate's reasons when its last gate failed, else ``fallback``
    (the engine's word for the failure: a step that failed, a readiness timeout)."""
    for event in reversed(events):
        if event.get("version") == version and event.get("event") == "started":
            break
        gate = event.get("gate") or {}
        if event.get("version") == version and event.get("event") == "gate":
            if not gate.get("passed", True):
                return "gate failed: " + "; ".join(gate.get("reasons") or [])
            break
    return fallback or "the run failed"


def record_rolled_back(
    name: str, started: Mapping[str, Any], reason: str, settings: Settings
) -> dict[str, Any]:
    """``rolled_back`` for the ``started`` event whose previous entry was restored; the reason
    is the failed gate's when there was one."""
    from components.rollout import history

    reason = failure_reason(history.read_history(name, settings), started["version"], reason)
    rolled_back = {
        **{k: started[k] for k in ("app", "engine", "target", "version") if k in started},
        "previous_version": started.get("previous_version"),
        "event": "rolled_back",
        "serving": started.get("previous_version"),
        "reason": reason,
    }
    return history.append_event(name, rolled_back, settings)


def outcome(
    params: ModelRolloutParams,
    result: str,
    plan: Mapping[str, Any] | None = None,
    gate: Mapping[str, Any] | None = None,
    collection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A run's report: what was rolled out where, and how it ended."""
    report: dict[str, Any] = {
        "job": JOB_NAME,
        "outcome": result,
        "app": params.app,
        "target": params.target,
        "engine": params.engine,
        "name": params.store_name,
        "version": params.version,
    }
    if plan is not None:
        report["previous_version"] = plan.get("previous_version")
    if gate is not None:
        report["gate_passed"] = bool(gate["passed"])
        report["gate_table"] = gate.get("table", "")
    if collection is not None:
        report["collection"] = dict(collection)
    return report


def outcome_uri(name: str, version: str, settings: Settings) -> str:
    """Where a run's outcome is kept: ``<store>/<name>/outcomes/<version>.json``, next to the
    history (what the engines' last step reads back, whichever branch ran)."""
    from components.rollout.history import history_uri

    folder = history_uri(name, settings).rsplit("/", 1)[0]
    return f"{folder}/outcomes/{version}.json"


def store_outcome(report: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Keep the run's outcome (see ``outcome_uri``); returns it."""
    from components.storage.objects import write_text

    uri = outcome_uri(report["name"], report["version"], settings)
    write_text(uri, json.dumps(report, indent=2, sort_keys=True), settings)
    return report


def read_outcome(values: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome this run's deciding step kept."""
    from components.storage.objects import read_text

    params = read_params(values)
    settings = job_settings()
    report: dict[str, Any] = json.loads(
        read_text(outcome_uri(params.store_name, params.version, settings), settings)
    )
    return report


def pending_start(values: Mapping[str, Any], settings: Settings) -> dict[str, Any] | None:
    """This run's ``started`` event when no decision followed it (``rollout_flow.interrupted``):
    what a failed run's exit handler restores. None when its rollout never started."""
    from components.rollout import history
    from components.rollout.rollout_flow import interrupted

    params = read_params(values)
    pending = interrupted(history.read_history(params.store_name, settings))
    if pending is None or pending.get("version") != params.version:
        return None
    return pending
