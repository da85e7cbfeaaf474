"""Go durations and ``when`` conditions (govaluate's subset), as argo-local reads them."""

from __future__ import annotations

import re
from typing import Any

from .model import NodeError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_WHEN_TOKEN = re.compile(
    r"\s*(?:(?P<op>\|\||&&|==|!=|\(|\))"  # operators and parentheses
    r"|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\""  # quoted strings
    r"|(?P<num>-?\d+(?:\.\d+)?)(?![\w.])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)

Token = tuple[str, Any]  # ("op", "&&") or ("value", "text" | 1.0 | True)


def parse_duration(value: Any) -> float:
    """Seconds from an Argo/Go duration (``"30s"``, ``"1m30s"``, ``"2h"``) or a number."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise NodeError(f"{value!r} is not a duration")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def evaluate_when(text: str) -> bool:
    """A substituted ``when`` condition's value; ValueError for what argo-local cannot read.

    ``==`` and ``!=`` between quoted strings, numbers, ``true``/``false`` and bare words (a bare
    word is its own text), joined by ``&&`` and ``||`` (both sides evaluated), in parentheses.
    """
    text = text.strip()
    return _Condition(text, when_tokens(text)).value()


def when_tokens(text: str) -> list[Token]:
    """The tokens of a ``when`` condition; ValueError at the first thing it cannot read."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _WHEN_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ValueError(f"cannot read {text[position:]!r} in {text!r}")
        position = match.end()
        if match["op"]:
            tokens.append(("op", match["op"]))
        elif match["sq"] is not None or match["dq"] is not None:
            tokens.append(("value", match["sq"] if match["sq"] is not None else match["dq"]))
        elif match["num"]:
            tokens.append(("value", float(match["num"])))
        else:
            word = match["word"]
            tokens.append(("value", {"true": True, "false": False}.get(word, word)))
    return tokens


class _Condition:
    """A recursive-descent reading of the tokens: ``||`` over ``&&`` over comparisons."""

    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def value(self) -> bool:
        result = self.truth(self.either())
        if self.index != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.index][1]!r} in {self.text!r}")
        return result

    def peek(self) -> Any:
        """The operator at the current token, None for a value or the end."""
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "op":
            return self.tokens[self.index][1]
        return None

    def atom(self) -> Any:
        if self.index >= len(self.tokens):
            raise ValueError(f"{self.text!r} ends too early")
        kind, value = self.tokens[self.index]
        self.index += 1
        if kind == "value":
            return value
        if value == "(":
            inner = self.either()
            if self.peek() != ")":
                raise ValueError(f"unbalanced parentheses in {self.text!r}")
            self.index += 1
            return inner
        raise ValueError(f"unexpected {value!r} in {self.text!r}")

    def comparison(self) -> Any:
        left = self.atom()
        operator = self.peek()
        if operator in ("==", "!="):
            self.index += 1
            right = self.atom()
            return (left == right) == (operator == "==")
        return left

    def truth(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a condition in {self.text!r}")
        return value

    def both(self) -> Any:
        value = self.comparison()
        while self.peek() == "&&":
            self.index += 1
            right = self.comparison()  # govaluate evaluates both sides
            value = self.truth(value) and self.truth(right)
        return value

    def either(self) -> Any:
        value = self.both()
        while self.peek() == "||":
            self.index += 1
            right = self.both()
            value = self.truth(value) or self.truth(right)
        return value
