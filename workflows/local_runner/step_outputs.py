"""Outputs above the leaves: a step's (aggregated over its fan-out) and a steps/DAG template's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .model import NodeStatus, Outcome, UnsupportedFeatureError, group_phase
from .templating import substitute


@dataclass
class StepRun:
    """One step or DAG task that started: its finished nodes, whether it was fanned out, and
    whether every child of its fan-out started (failFast can stop one part way)."""

    name: str
    nodes: list[NodeStatus]
    expanded: bool = False
    complete: bool = True

    @property
    def phase(self) -> str:
        """Skipped, Succeeded or Failed from its nodes; Omitted when failFast stopped its
        fan-out before every child started, none of those that started having failed."""
        phase = group_phase(self.nodes)
        return phase if self.complete or phase == "Failed" else "Omitted"


def record_outputs(scope: dict[str, str], prefix: str, run: StepRun) -> None:
    """Put a step's (or task's) outputs into ``scope`` under ``prefix`` (``steps.X``), as Argo
    aggregates a fan-out's: ``outputs.result`` is a JSON list in which each result that parses
    as a JSON object is that object, any other a string; ``outputs.parameters`` a JSON list of
    ``{name: value}`` maps, and each ``outputs.parameters.name`` the JSON list of its values."""
    if not run.expanded:
        node = run.nodes[0]
        if node.result is not None:
            scope[f"{prefix}.outputs.result"] = node.result
        for name, value in node.parameters.items():
            scope[f"{prefix}.outputs.parameters.{name}"] = value
        scope[f"{prefix}.status"] = node.phase
        if node.exit_code is not None:
            scope[f"{prefix}.exitCode"] = str(node.exit_code)
        return
    results: list[Any] = []
    params: list[dict[str, str]] = []
    for node in run.nodes:
        if node.result is not None:
            try:
                parsed = json.loads(node.result)
            except ValueError:
                parsed = None
            results.append(parsed if isinstance(parsed, dict) else node.result)
        if node.parameters:
            params.append(dict(node.parameters))
    scope[f"{prefix}.outputs.result"] = json.dumps(results, separators=(",", ":"))
    scope[f"{prefix}.outputs.parameters"] = json.dumps(params, separators=(",", ":"))
    for name in sorted({name for p in params for name in p}):
        values = [p[name] for p in params if name in p]
        scope[f"{prefix}.outputs.parameters.{name}"] = json.dumps(values)
    scope[f"{prefix}.status"] = group_phase(run.nodes)


def template_outputs(tmpl: dict[str, Any], scope: dict[str, str]) -> Outcome:
    """A succeeded steps/DAG template's outcome, with its ``outputs.parameters``
    (``valueFrom.parameter`` or ``value``, substituted in its scope)."""
    parameters: dict[str, str] = {}
    for param in tmpl.get("outputs", {}).get("parameters", []):
        value_from = param.get("valueFrom", {})
        where = f"template {tmpl['name']!r} outputs.parameters.{param['name']}"
        if "parameter" in value_from:
            parameters[param["name"]] = substitute(value_from["parameter"], scope, where)
        elif "value" in param:
            parameters[param["name"]] = substitute(str(param["value"]), scope, where)
        else:
            raise UnsupportedFeatureError(f"{where}: only valueFrom.parameter or value")
    if tmpl.get("outputs", {}).get("artifacts"):
        raise UnsupportedFeatureError(
            f"template {tmpl['name']!r}: outputs.artifacts of a steps/DAG template"
        )
    return Outcome("Succeeded", parameters=parameters)
