"""The parts of gjson (reading) and sjson (writing) paths that sensors use, with their results'
types and text as Argo Events reads them (tidwall/gjson v1.19, tidwall/sjson v1.2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_LITERAL_NAMES = {"true": True, "false": False, "null": None}


class Unsupported(ValueError):
    """A path, template or filter that the simulator does not implement."""


@dataclass(frozen=True)
class Found:
    """A value at a path, with gjson's type (String, Number, True, False, Null, JSON)."""

    value: Any

    @property
    def kind(self) -> str:
        value = self.value
        if value is None:
            return "Null"
        if isinstance(value, bool):
            return "True" if value else "False"
        if isinstance(value, int | float):
            return "Number"
        if isinstance(value, str):
            return "String"
        return "JSON"

    @property
    def raw(self) -> str:
        return compact(self.value)

    def text(self) -> str:
        """gjson's ``Result.String()``: a string as it is, JSON as its text, null as ''."""
        value = self.value
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return go_float(value)
        return self.raw


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def go_float(value: float) -> str:
    """``strconv.FormatFloat(f, 'f', -1, 64)``: the shortest digits, never an exponent."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def split(path: str) -> list[str]:
    """A dotted path's parts (``\\`` escapes the next character, as in gjson)."""
    parts, current, escaped = [], "", False
    for char in path:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ".":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _literal(path: str) -> Found:
    """A gjson literal (``!true``, ``!"text"``, ``!3``) standing for itself."""
    text = path[1:]
    if text.lower() in _LITERAL_NAMES:
        return Found(_LITERAL_NAMES[text.lower()])
    try:
        return Found(json.loads(text))
    except ValueError:
        raise Unsupported(f"gjson path {path!r}: not a literal this simulator reads") from None


def get(document: Any, path: str) -> Found | None:
    """The value at ``path`` (None when it does not exist)."""
    if path == "@this":
        return Found(document)
    if path.startswith("!"):
        return _literal(path)
    if not path or path[0] == "@" or any(char in path for char in "*?|#[{("):
        raise Unsupported(f"gjson path {path!r} uses syntax this simulator does not implement")
    current = document
    for part in split(path):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return Found(current)


def set_path(document: Any, path: str, value: Any) -> Any:
    """``document`` with ``value`` at ``path``, creating objects (arrays for a numeric part) as
    sjson does; ``-1`` appends to an array. Returns the (new) document."""
    parts = split(path)
    if any(not part for part in parts):
        raise Unsupported(f"sjson path {path!r} has an empty part")
    return _set(document, parts, value)


def _container_for(part: str) -> Any:
    return [] if part.isdigit() or part == "-1" else {}


def _set(node: Any, parts: list[str], value: Any) -> Any:
    part, rest = parts[0], parts[1:]
    if node is None:
        node = _container_for(part)
    if isinstance(node, list) and (part.isdigit() or part == "-1"):
        index = len(node) if part == "-1" else int(part)
        while len(node) <= index:
            node.append(None)
        node[index] = _set(node[index], rest, value) if rest else value
        return node
    if isinstance(node, dict):
        node[part] = _set(node.get(part), rest, value) if rest else value
        return node
    raise Unsupported(f"cannot set {'.'.join(parts)!r} inside a {type(node).__name__}")
