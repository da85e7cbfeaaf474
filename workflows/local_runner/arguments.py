"""Arguments: the workflow's parameters, and a template's inputs with their values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .model import NodeError


def workflow_arguments(spec: Mapping[str, Any], given: dict[str, str]) -> dict[str, str]:
    """The workflow's parameters: given, else declared defaults; NodeError names what is wrong."""
    declared = spec.get("arguments", {}).get("parameters", [])
    names = {p["name"] for p in declared}
    unknown = sorted(set(given) - names)
    if unknown:
        raise NodeError(f"unknown workflow parameters {unknown} (declared: {sorted(names)})")
    values: dict[str, str] = {}
    for param in declared:
        name = param["name"]
        if name in given:
            value = str(given[name])
        elif "value" in param:
            value = str(param["value"])
        else:
            raise NodeError(f"spec.arguments.parameters.{name} was not supplied")
        enum = param.get("enum")
        if enum is not None and value not in [str(e) for e in enum]:
            raise NodeError(f"workflow parameter {name}: {value!r} is not one of {enum}")
        values[name] = value
    return values


def template_inputs(tmpl: dict[str, Any], arguments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The template's input parameters with their values, in Argo's JSON shape."""
    given = {a["name"]: a.get("value") for a in arguments}
    resolved: list[dict[str, Any]] = []
    for param in tmpl.get("inputs", {}).get("parameters", []):
        name = param["name"]
        value = given.get(name)
        if value is None:
            value = param.get("value", param.get("default"))
        if value is None:
            raise NodeError(
                f"inputs.parameters.{name} was not supplied to template {tmpl['name']!r}"
            )
        entry: dict[str, Any] = {"name": name}
        if "default" in param:
            entry["default"] = str(param["default"])
        entry["value"] = str(value)
        if "enum" in param:
            entry["enum"] = [str(e) for e in param["enum"]]
            if entry["value"] not in entry["enum"]:
                raise NodeError(f"inputs.parameters.{name}: {value!r} not in {param['enum']}")
        if "description" in param:
            entry["description"] = param["description"]
        resolved.append(entry)
    return resolved
