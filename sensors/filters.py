"""The data filters of the sensors' dependencies, as regular expressions that mean the same in
Go's RE2 (Argo Events) and Python's ``re`` (``llmw events simulate``).

Argo Events *searches* a string filter's expression in the value (``regexp.Match``): every
expression here that must hold for the whole value is anchored (``^…$``).
"""

from __future__ import annotations

from collections.abc import Iterable

from components.registry import FORBIDDEN_KEYS
from sensors.models import DataFilter

_SPECIAL = set("\\.+*?()|[]{}^$")
# Characters a key may not hold: a quote, a backslash or a control character would break the
# JSON text an Argo parameter carries (document-removal's ``uris``), so such keys are refused.
UNSAFE_KEY_CHARACTERS = r'["\\\x00-\x1f]'


def literal(text: str) -> str:
    """``text`` matched literally (the same escapes in RE2 and Python)."""
    return "".join(f"\\{char}" if char in _SPECIAL else char for char in text)


def equals(path: str, text: str) -> DataFilter:
    return DataFilter(path=path, type="string", value=[f"^{literal(text)}$"])


def starts_with(path: str, prefix: str) -> DataFilter:
    return DataFilter(path=path, type="string", value=[f"^{literal(prefix)}"])


def ends_with_any(path: str, suffixes: Iterable[str]) -> DataFilter:
    """Any of ``suffixes``, in any case."""
    choices = "|".join(literal(suffix) for suffix in sorted(set(suffixes)))
    return DataFilter(path=path, type="string", value=[f"(?i)({choices})$"])


def safe_key(path: str) -> DataFilter:
    """No quote, backslash or control character anywhere in the value."""
    return DataFilter(path=path, type="string", value=[UNSAFE_KEY_CHARACTERS], comparator="!=")


def present(path: str) -> DataFilter:
    """The path exists (any value): a missing field fails the filter."""
    return DataFilter(path=path, type="string", value=[".*"])


def is_object(path: str) -> DataFilter:
    """The value is a JSON object (its text starts with ``{``)."""
    return DataFilter(path=path, type="string", value=[r"^\s*\{"])


def forbidden_key_pattern() -> str:
    """A JSON key (``"name":``) that is one of FORBIDDEN_KEYS as the bridge compares them:
    any case, any ``-`` or ``_`` anywhere in it."""
    squashed = sorted({key.replace("_", "") for key in FORBIDDEN_KEYS})
    names = "|".join("[-_]*".join(name) for name in squashed)
    return rf'(?i)"[-_]*({names})[-_]*"\s*:'


def no_forbidden_keys(path: str) -> DataFilter:
    """No key anywhere in the value's JSON text may be a forbidden one."""
    return DataFilter(path=path, type="string", value=[forbidden_key_pattern()], comparator="!=")
