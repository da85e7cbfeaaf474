"""A dependency's data filters on an event, as Argo Events evaluates them: a missing path fails
the filter; for ``type: string`` each value is a regular expression *searched* in the value's
text, ``=`` (or none) passing on a match and ``!=`` on no match; any value passing passes the
filter; every filter must pass (``dataLogicalOperator`` unset: and)."""

from __future__ import annotations

import re
from typing import Any

from sensors.simulate.jsonpath import Unsupported, get

_TEXT_SHOWN = 200
_FEATURES = ("exprs", "script", "context", "time", "dataLogicalOperator", "exprLogicalOperator")


def _shown(text: str) -> str:
    return repr(text if len(text) <= _TEXT_SHOWN else text[:_TEXT_SHOWN] + "…")


def python_pattern(pattern: str) -> str:
    """An RE2 pattern for Python's ``re``: a final ``$`` is the end of the text (``\\Z``),
    as in RE2, not also before a final newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        return pattern[:-1] + r"\Z"
    return pattern


def check(dependency: dict[str, Any], data: Any) -> list[str]:
    """Why the event does not pass the dependency's filters (empty: it passes)."""
    if dependency.get("filtersLogicalOperator") not in (None, "and"):
        raise Unsupported("filtersLogicalOperator other than 'and'")
    filters = dependency.get("filters") or {}
    unsupported = [name for name in _FEATURES if name in filters]
    if unsupported:
        raise Unsupported(f"filters {', '.join(unsupported)}")
    reasons = []
    for data_filter in filters.get("data", []):
        reason = _data_filter(data_filter, data)
        if reason:
            reasons.append(reason)
    return reasons


def _data_filter(data_filter: dict[str, Any], data: Any) -> str | None:
    path = data_filter["path"]
    if data_filter.get("type") != "string" or data_filter.get("template"):
        raise Unsupported(f"data filter on {path}: only string filters without a template")
    found = get(data, path)
    if found is None:
        return f"{path}: missing (the event has no such field)"
    values = data_filter.get("value") or []
    if not values:
        return f"{path}: the filter lists no values"
    text = found.text()
    negate = data_filter.get("comparator") == "!="
    if data_filter.get("comparator") not in (None, "=", "!="):
        raise Unsupported(f"data filter on {path}: comparator {data_filter['comparator']!r}")
    matched = ""
    for pattern in values:
        found_match = re.search(python_pattern(pattern), text)
        if bool(found_match) != negate:
            return None
        matched = found_match.group(0) if found_match else matched
    if negate:
        return f"{path}: holds {_shown(matched)}, which is refused (in {_shown(text)})"
    return f"{path}: {_shown(text)} does not match {' or '.join(map(repr, values))}"
