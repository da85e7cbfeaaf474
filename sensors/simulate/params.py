"""Trigger parameters, as Argo Events resolves and applies them (``triggers/params.go``):

a source's value comes from the event's context (``contextKey``/``contextTemplate``) or its data
(``dataKey``/``dataTemplate``; data wins when both are set): a template first, then the key,
then ``value`` (the default); with none of them, ``value`` or the whole event. A JSON-typed
result with ``useRawData`` is written as JSON, anything else as a string. A payload is built
from nothing; a resource (a Workflow) has the values written into it.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from sensors.simulate.events import Event
from sensors.simulate.gotemplate import NO_VALUE, TemplateError, render
from sensors.simulate.jsonpath import Unsupported, compact, get, set_path

STRING = "String"


class ParamError(ValueError):
    """A parameter Argo Events cannot resolve: the trigger fails (retried, then dead-lettered)."""


def _whole_event(event: Event) -> str:
    data = base64.b64encode(compact(event.data).encode()).decode()
    return compact({"context": event.context, "data": data})


def _from_template(template: str, payload: Any) -> str | None:
    try:
        out = render(template, payload)
    except TemplateError:
        return None
    return None if out in ("", NO_VALUE) else out


def resolve(src: dict[str, Any], dependency: str, event: Event) -> tuple[str | None, str]:
    """The value (text) and its gjson type; ParamError when it cannot be resolved."""
    default = src.get("value")
    if src.get("dependencyName") != dependency:
        return default, STRING
    keys = [src.get(name) for name in ("contextKey", "contextTemplate", "dataKey", "dataTemplate")]
    if not any(keys):
        return (default if default is not None else _whole_event(event)), STRING
    context_key, context_template, data_key, data_template = keys
    key, template, payload = context_key, context_template, event.context
    if data_key or data_template:
        key, template, payload = data_key, data_template, event.data
    if template:
        out = _from_template(template, payload)
        if out is not None:
            return out, STRING
    if key:
        found = get(payload, key)
        if found is not None:
            text = found.raw if found.kind in ("JSON", "Null") else found.text()
            return text, found.kind
    if default is not None:
        return default, STRING
    where = template or key
    raise ParamError(f"unable to resolve the parameter from {where!r}: the event has no such value")


def _value(text: str, kind: str, src: dict[str, Any]) -> Any:
    """What is written: the JSON itself (a raw, non-string result) or the text."""
    return json.loads(text) if kind != STRING and src.get("useRawData") else text


def construct_payload(params: list[dict[str, Any]], dependency: str, event: Event) -> Any:
    """The JSON payload of a NATS or HTTP trigger."""
    payload: Any = None
    for param in params:
        src = param.get("src") or {}
        text, kind = resolve(src, dependency, event)
        dest = param.get("dest", "")
        if not dest:
            if text is not None:
                return json.loads(text)
            continue
        if text is None:
            raise ParamError(f"no value for {dest!r}")
        payload = set_path(payload, dest, _value(text, kind, src))
    return payload


def apply_params(
    resource: dict[str, Any], params: list[dict[str, Any]], dependency: str, event: Event
) -> dict[str, Any]:
    """A copy of ``resource`` with the parameters' values written into it."""
    result = copy.deepcopy(resource)
    for param in params:
        src = param.get("src") or {}
        text, kind = resolve(src, dependency, event)
        if text is None:
            continue
        operation = param.get("operation") or "overwrite"
        if operation in ("append", "prepend"):
            current = get(result, param["dest"])
            if current is not None:
                kind = STRING
                text = current.text() + text if operation == "append" else text + current.text()
        elif operation != "overwrite":
            raise Unsupported(f"parameter operation {operation!r}")
        result = set_path(result, param["dest"], _value(text, kind, src))
    return result
