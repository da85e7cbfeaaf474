"""Argo's ``{{...}}`` substitution: one string, whole structures, and how items print."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .model import NodeError, UnsupportedFeatureError

VARIABLE = re.compile(r"\{\{(.*?)\}\}")


def item_text(value: Any) -> str:
    """How Argo prints a fan-out item (or a map value) into a template."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def item_scope(scope: Mapping[str, str], item: Any) -> dict[str, str]:
    """``scope`` with ``{{item}}`` (and ``{{item.key}}`` for a map) of one fan-out child."""
    scoped = dict(scope)
    scoped["item"] = item_text(item)
    if isinstance(item, dict):
        scoped.update({f"item.{k}": item_text(v) for k, v in item.items()})
    return scoped


def substitute(text: str, scope: Mapping[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text``; an unknown name is an error naming ``where``."""

    def replace(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        if key.startswith("="):
            raise UnsupportedFeatureError(f"{where}: expressions ({match.group(0)}) not supported")
        if key not in scope:
            raise NodeError(f"{where}: unresolved variable {match.group(0)}")
        return scope[key]

    return VARIABLE.sub(replace, text)


def substitute_all(value: Any, scope: Mapping[str, str], where: str) -> Any:
    """``value`` with every string in it (in lists and maps, at any depth) substituted."""
    if isinstance(value, str):
        return substitute(value, scope, where)
    if isinstance(value, list):
        return [substitute_all(v, scope, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: substitute_all(v, scope, f"{where}.{k}") for k, v in value.items()}
    return value
