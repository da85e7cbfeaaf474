"""A parameter value as Argo passes it: text, whoever renders it (templates, sensors)."""

from __future__ import annotations

import json
from typing import Any


def argument_text(value: Any) -> str:
    """``""`` for None, strings as they are, ``true``/``false``, compact JSON for the rest."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))
