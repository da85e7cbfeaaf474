"""One sensor on one sample event: the event as the sensor receives it, its dependency's
filters, then each trigger: fired, with what it would create, or why not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from components.registry import ParameterError, UnknownPipelineError, get_job
from sensors.simulate import events
from sensors.simulate.filters import check
from sensors.simulate.params import ParamError, apply_params, construct_payload


@dataclass
class TriggerOutcome:
    """A trigger: whether it fires, what it would create, and the problems with it (the
    pipeline's parameter model refusing what it would send, a value it cannot resolve)."""

    name: str
    kind: str  # nats, argoWorkflow, http
    target: str
    fires: bool
    creates: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    dead_letter: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "trigger": self.name,
            "kind": self.kind,
            "target": self.target,
            "fires": self.fires,
            "creates": self.creates,
            "problems": self.problems,
            "dead_letter": self.dead_letter,
        }


@dataclass
class Simulation:
    sensor: str
    pipeline: str
    event: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # why no trigger fires
    triggers: list[TriggerOutcome] = field(default_factory=list)

    @property
    def fires(self) -> bool:
        return any(t.fires and not t.problems for t in self.triggers)

    def to_json(self) -> dict[str, Any]:
        return {
            "sensor": self.sensor,
            "pipeline": self.pipeline,
            "event": self.event,
            "fires": self.fires,
            "reasons": self.reasons,
            "notes": self.notes,
            "triggers": [t.to_json() for t in self.triggers],
        }


def route_of(sensor: dict[str, Any], event_source: dict[str, Any]) -> events.Route:
    """The sensor's (one) dependency and its EventSource's entry for that event."""
    dependency = sensor["spec"]["dependencies"][0]
    name = dependency["eventName"]
    for kind in ("minio", "calendar", "webhook"):
        entry = (event_source["spec"].get(kind) or {}).get(name)
        if entry is not None:
            return events.Route(dependency["eventSourceName"], name, kind, entry)
    raise ValueError(f"EventSource {event_source['metadata']['name']} has no event {name!r}")


def simulate(sensor: dict[str, Any], event_source: dict[str, Any], raw: bytes) -> Simulation:
    """What ``sensor`` does with the sample ``raw`` (ValueError: the sample is not JSON, or
    not an event of the sensor's kind)."""
    dependency = sensor["spec"]["dependencies"][0]
    pipeline = sensor["metadata"].get("annotations", {}).get("llm-workflows/pipeline", "")
    result = Simulation(sensor=sensor["metadata"]["name"], pipeline=pipeline)
    route = route_of(sensor, event_source)
    try:
        event = events.load(raw, route)
    except events.Refused as refused:
        result.reasons.append(f"no event: {refused}")
        return result
    result.event = {"form": event.form, **event.context}
    result.notes += event.notes
    result.reasons += [f"filter: {reason}" for reason in check(dependency, event.data)]
    if result.reasons:
        return result
    for trigger in sensor["spec"]["triggers"]:
        result.triggers.append(_outcome(trigger, result, dependency["name"], event))
    return result


def _outcome(
    trigger: dict[str, Any], result: Simulation, dependency: str, event: events.Event
) -> TriggerOutcome:
    template = trigger["template"]
    kind = next(k for k in ("nats", "argoWorkflow", "http") if k in template)
    spec = template[kind]
    target = {
        "nats": lambda: f"{spec['url']} {spec['subject']}",
        "http": lambda: f"{spec['method']} {spec['url']}",
        "argoWorkflow": lambda: f"{spec['operation']} {_template_ref(spec)}",
    }[kind]()
    outcome = TriggerOutcome(name=template["name"], kind=kind, target=target, fires=True)
    dlq = trigger.get("dlqTrigger", {}).get("template", {}).get("nats")
    outcome.dead_letter = dlq["subject"] if dlq else None
    try:
        outcome.creates = _creates(kind, spec, dependency, event)
    except ParamError as exc:
        outcome.fires = False
        outcome.problems.append(f"the trigger fails (retried, then dead-lettered): {exc}")
        return outcome
    if kind == "argoWorkflow":
        # Argo Events labels what it submits (and adds events.argoproj.io/action-timestamp).
        labels = outcome.creates["workflow"].setdefault("metadata", {}).setdefault("labels", {})
        labels["events.argoproj.io/sensor"] = result.sensor
        labels["events.argoproj.io/trigger"] = template["name"]
    outcome.problems += _parameter_problems(kind, outcome.creates, result.pipeline)
    return outcome


def _template_ref(spec: dict[str, Any]) -> str:
    return f"WorkflowTemplate {spec['source']['resource']['spec']['workflowTemplateRef']['name']}"


def _creates(
    kind: str, spec: dict[str, Any], dependency: str, event: events.Event
) -> dict[str, Any]:
    if kind == "nats":
        request = construct_payload(spec["payload"], dependency, event)
        return {"kind": "AI_PIPELINE request", "subject": spec["subject"], "request": request}
    if kind == "http":
        body = construct_payload(spec["payload"], dependency, event)
        headers = dict(spec.get("headers") or {})
        for secure in spec.get("secureHeaders") or []:
            ref = secure["valueFrom"]["secretKeyRef"]
            headers[secure["name"]] = f"<Secret {ref['name']}, key {ref['key']}>"
        run = {"method": spec["method"], "url": spec["url"], "headers": headers, "body": body}
        return {"kind": "KFP run", **run}
    params = spec.get("parameters") or []
    workflow = apply_params(spec["source"]["resource"], params, dependency, event)
    return {"kind": "Workflow", "workflow": workflow}


def argument_value(text: str) -> Any:
    """An Argo parameter's text as the steps read it: "" is unset, JSON lists and objects are
    decoded, anything else is text for the model to coerce (``true``, ``2``) or refuse."""
    if text == "":
        return None
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def _parameter_problems(kind: str, creates: dict[str, Any], pipeline: str) -> list[str]:
    """What the pipeline's parameter model (the one `llmw run -p` uses) says of the values."""
    values: Any
    if kind == "nats":
        values = (creates["request"] or {}).get("parameters") or {}
    elif kind == "http":
        values = ((creates["body"] or {}).get("runtime_config") or {}).get("parameters") or {}
    else:
        arguments = creates["workflow"]["spec"].get("arguments", {}).get("parameters", [])
        values = {a["name"]: argument_value(str(a.get("value", ""))) for a in arguments}
    if not isinstance(values, dict):
        return [f"the parameters are not an object: {type(values).__name__}"]
    try:
        get_job(pipeline).validate(values)
    except (ParameterError, UnknownPipelineError) as exc:
        return [f"refused by the pipeline's parameters: {exc}"]
    return []
