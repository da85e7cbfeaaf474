"""A resource template's ``successCondition`` and ``failureCondition``, as Argo evaluates them.

Argo parses each with Kubernetes' label-selector parser (``labels.Parse``) and matches it against
the object's JSON, reading each key as a gjson path. So: requirements joined by ``,`` (all must
hold), each ``key``, ``!key``, ``key = v``, ``key == v``, ``key != v``, ``key in (a,b)``,
``key notin (a,b)``, ``key > n`` or ``key < n`` (n an integer). A key must be a valid label key
(at most 63 characters after an optional ``prefix/``, letters, digits, ``-``, ``_``, ``.``), a
value a valid label value: what labels.Parse refuses is refused here, with its words. A key's
path steps through objects by name and arrays by index; a value is read as gjson prints it
(strings as they are, ``true``/``false``, numbers, objects and arrays as JSON, null as the
empty string). ``!=`` and ``notin`` hold for a key that is absent, as in Kubernetes; ``>`` and
``<`` need the value to be an integer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = "=!(),<>"
_OPERATORS = {"=", "==", "!=", "!", "(", ")", ",", ">", "<"}
MISSING = object()


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # exists, !, =, ==, !=, in, notin, >, <
    values: tuple[str, ...] = ()

    def matches(self, document: Any) -> bool:
        found = lookup(document, self.key)
        if self.operator == "exists":
            return found is not MISSING
        if self.operator == "!":
            return found is MISSING
        if self.operator in ("!=", "notin"):
            return found is MISSING or text(found) not in self.values
        if found is MISSING:
            return False
        if self.operator in ("=", "==", "in"):
            return text(found) in self.values
        try:
            number = int(text(found))
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.operator == ">" else number < limit

    def __str__(self) -> str:
        if self.operator in ("exists", "!"):
            return ("!" if self.operator == "!" else "") + self.key
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(sorted(self.values))})"
        return f"{self.key}{self.operator}{self.values[0]}"


def lookup(document: Any, key: str) -> Any:
    """The value at gjson path ``key`` (dots between steps), or ``MISSING``."""
    current = document
    for step in key.split("."):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return MISSING
    return current


def text(value: Any) -> str:
    """A JSON value as gjson's ``String()`` prints it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _tokens(selector: str) -> list[tuple[str, str]]:
    """Kubernetes' lexer: ``(kind, literal)`` with kind ``op``, ``id`` or ``end``."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(selector):
        ch = selector[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _SPECIAL:
            j = i + 1
            while j < len(selector) and selector[i : j + 1] in _OPERATORS:
                j += 1
            tokens.append(("op", selector[i:j]))
            i = j
        else:
            j = i
            while j < len(selector) and selector[j] not in _SPECIAL + " \t\r\n":
                j += 1
            word = selector[i:j]
            tokens.append(("op" if word in ("in", "notin") else "id", word))
            i = j
    return [*tokens, ("end", "")]


def _check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or not _SUBDOMAIN.match(prefix) or len(prefix) > 253):
        raise ValueError(f"{key!r}: prefix part must be a lowercase RFC 1123 subdomain")
    if not name:
        raise ValueError(f"{key!r}: name part must be non-empty")
    if len(name) > 63:
        raise ValueError(f"{key!r}: name part must be no more than 63 characters")
    if not _NAME.match(name):
        raise ValueError(
            f"{key!r}: name part must consist of alphanumeric characters, '-', '_' or '.', and "
            "must start and end with an alphanumeric character"
        )


def _check_value(value: str) -> None:
    if len(value) > 63:
        raise ValueError(f"{value!r}: must be no more than 63 characters")
    if not _VALUE.match(value):
        raise ValueError(
            f"{value!r}: a valid label must be an empty string or consist of alphanumeric "
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )


class _Parser:
    def __init__(self, selector: str) -> None:
        self.tokens = _tokens(selector)
        self.at = 0

    def peek(self, values: bool = False) -> tuple[str, str]:
        kind, literal = self.tokens[self.at]
        return ("id", literal) if values and literal in ("in", "notin") else (kind, literal)

    def take(self, values: bool = False) -> tuple[str, str]:
        token = self.peek(values)
        self.at += 1
        return token

    def parse(self) -> list[Requirement]:
        found: list[Requirement] = []
        while True:
            kind, literal = self.peek(values=True)
            if kind == "end":
                return found
            if kind != "id" and literal != "!":
                raise ValueError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            found.append(self.requirement())
            kind, literal = self.take(values=True)
            if kind == "end":
                return found
            if literal != ",":
                raise ValueError(f"found '{literal}', expected: ',' or 'end of string'")
            if self.peek(values=True)[0] != "id" and self.peek()[1] != "!":
                raise ValueError(f"found '{self.peek()[1]}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        negated = self.peek()[1] == "!"
        if negated:
            self.take()
        kind, key = self.take(values=True)
        if kind != "id":
            raise ValueError(f"found '{key}', expected: identifier")
        _check_key(key)
        if self.peek(values=True)[0] == "end" or self.peek()[1] == ",":
            return Requirement(key, "!" if negated else "exists")
        if negated:
            raise ValueError(f"found '{self.peek()[1]}', expected: ',' or 'end of string'")
        _, operator = self.take()
        if operator in ("in", "notin"):
            values = self.value_set()
        elif operator in ("=", "==", "!=", ">", "<"):
            values = self.exact_value()
        else:
            raise ValueError(f"found '{operator}', expected: '=', '!=', '==', 'in', notin'")
        for value in values:
            _check_value(value)
        if operator in (">", "<") and not re.fullmatch(r"[+-]?\d+", values[0]):
            raise ValueError(
                f"for 'Gt', 'Lt' operators, the value must be an integer: {values[0]!r}"
            )
        return Requirement(key, operator, values)

    def exact_value(self) -> tuple[str, ...]:
        kind, literal = self.peek(values=True)
        if kind == "end" or literal == ",":
            return ("",)
        kind, literal = self.take(values=True)
        if kind != "id":
            raise ValueError(f"found '{literal}', expected: identifier")
        return (literal,)

    def value_set(self) -> tuple[str, ...]:
        if self.take()[1] != "(":
            raise ValueError("expected: '('")
        values: list[str] = []
        expect_value = True
        while True:
            kind, literal = self.take(values=True)
            if literal == ")":
                if expect_value and values:
                    values.append("")
                return tuple(dict.fromkeys(values or [""]))
            if literal == ",":
                if expect_value:
                    values.append("")
                expect_value = True
            elif kind == "id" and expect_value:
                values.append(literal)
                expect_value = False
            else:
                raise ValueError(f"found '{literal}', expected: ',', ')' or identifier")


def parse_condition(selector: str) -> list[Requirement]:
    """The requirements of a condition; ValueError with labels.Parse's reason."""
    try:
        return _Parser(selector).parse()
    except ValueError as exc:
        raise ValueError(f"unable to parse requirement: {exc}") from None


def check(document: Any, success: list[Requirement], failure: list[Requirement]) -> str | None:
    """``failed: <why>`` when a failure requirement holds, ``succeeded`` when every success
    requirement does, None to keep waiting (Argo's ``matchConditions``)."""
    for requirement in failure:
        if requirement.matches(document):
            return f"failed: failure condition '{requirement}' evaluated true"
    if all(requirement.matches(document) for requirement in success):
        return "succeeded"
    return None
