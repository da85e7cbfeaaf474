"""The Go templates sensors use in trigger parameters, evaluated as ``text/template`` would over
``{"Input": <the event's data or context>}``: text, ``{{ .Input.a.b }}`` and
``{{ (index .Input.a 0).b }}``. Anything else is refused (Unsupported)."""

from __future__ import annotations

import re
from typing import Any

from sensors.simulate.jsonpath import Unsupported, go_float

NO_VALUE = "<no value>"
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_FIELDS = r"((?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
_INPUT = re.compile(rf"^\.Input{_FIELDS}$")
_INDEX = re.compile(rf"^\(index\s+(.+?)\s+(\d+)\){_FIELDS}$")
_MISSING = object()  # a map's missing key: printed as NO_VALUE, an error to go further


class TemplateError(ValueError):
    """The template failed as Go's would at execution (Argo Events then falls back)."""


def render(template: str, data: Any) -> str:
    """The template's output over ``data`` (the ``.Input``)."""
    out, end = [], 0
    for match in _ACTION.finditer(template):
        out.append(template[end : match.start()])
        out.append(_print(_evaluate(match.group(1).strip(), data)))
        end = match.end()
    out.append(template[end:])
    if "{{" in out[-1] or "}}" in out[-1]:
        raise Unsupported(f"template {template!r} has an unclosed action")
    return "".join(out)


def _fields(value: Any, fields: str, expression: str) -> Any:
    for name in [f for f in fields.split(".") if f]:
        if value is _MISSING or value is None:
            raise TemplateError(f"{expression}: nil pointer evaluating interface {{}}.{name}")
        if not isinstance(value, dict):
            kind = type(value).__name__
            raise TemplateError(f"{expression}: can't evaluate field {name} in type {kind}")
        value = value.get(name, _MISSING)
    return value


def _evaluate(expression: str, data: Any) -> Any:
    if expression.startswith("-") or expression.endswith("-"):
        raise Unsupported(f"template action {{{{{expression}}}}}: trim markers")
    found = _INPUT.match(expression)
    if found:
        return _fields(data, found.group(1), expression)
    found = _INDEX.match(expression)
    if found:
        target = _evaluate(found.group(1).strip(), data)
        index = int(found.group(2))
        if not isinstance(target, list):
            kind = "nil" if target is _MISSING or target is None else type(target).__name__
            raise TemplateError(f"{expression}: error calling index: cannot index {kind}")
        if index >= len(target):
            raise TemplateError(f"{expression}: error calling index: index out of range: {index}")
        return _fields(target[index], found.group(3), expression)
    raise Unsupported(f"template action {{{{ {expression} }}}} is not one this simulator reads")


def _print(value: Any) -> str:
    """A value as ``text/template`` prints it: strings, booleans, and whole numbers under a
    million (JSON numbers are float64 there; from 1e6 up Go prints an exponent, ``1e+06``)."""
    if value is _MISSING or value is None:
        return NO_VALUE
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    whole = isinstance(value, int) or (isinstance(value, float) and value == int(value))
    if whole and abs(value) < 1e6:
        return go_float(float(value))
    raise Unsupported(f"printing a {type(value).__name__} from a template")
