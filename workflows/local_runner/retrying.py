"""``retryStrategy`` as Argo reads it: the policy, the backoff, and the ``expression``.

Argo retries a failed attempt when its ``retryPolicy`` covers the attempt's phase AND its
``expression`` (expr-lang over ``lastRetry``) is true; with an expression and no policy, the
expression alone decides (Argo 3.5 and later), else the policy is ``OnFailure``.
``lastRetry.exitCode`` is the attempt's exit code as text, ``"-1"`` when it left none;
``lastRetry.status`` its phase (``Failed``, ``Error``); ``lastRetry.duration`` its seconds.

argo-local reads the expressions this project renders and what they are made of: comparisons
(``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``) of ``asInt(lastRetry.exitCode)`` or
``asInt(lastRetry.duration)`` with a whole number, and of ``lastRetry.status`` with a quoted
string (``==``, ``!=``), joined by ``&&`` and ``||``, in parentheses. Anything else
(``lastRetry.message``, ``matches``, template variables, functions) is refused, named.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .expressions import parse_duration

RETRY_POLICIES = ("Always", "OnFailure", "OnError", "OnTransientError")
_TOKEN = re.compile(
    r"\s*(?:(?P<op>\|\||&&|==|!=|<=|>=|<|>|\(|\))"
    r"|(?P<operand>asInt\(\s*lastRetry\.(?:exitCode|duration)\s*\)|lastRetry\.status\b)"
    r"|'(?P<sq>[^']*)'|\"(?P<dq>[^\"]*)\"|(?P<num>-?\d+)(?![\w.]))"
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class LastRetry:
    """What the expression sees of the attempt that just ended."""

    exit_code: int | None  # None: the attempt left no exit code (Argo's "-1")
    status: str  # Failed, Error
    duration_s: float

    def value(self, operand: str) -> int | str:
        if "exitCode" in operand:
            return -1 if self.exit_code is None else self.exit_code
        if "duration" in operand:
            return int(self.duration_s)
        return self.status


Condition = Callable[[LastRetry], bool]


def parse_retry_expression(text: str) -> Condition:
    """A ``retryStrategy.expression`` as a condition on the last attempt; ValueError naming what
    argo-local does not read."""
    return _Parser(text).parse()


def backoff_delay(backoff: Mapping[str, Any], attempt: int) -> float:
    """Argo's wait before retry ``attempt + 1``: ``duration * factor^attempt``, at most ``cap``."""
    if "duration" not in backoff:
        return 0.0
    delay = parse_duration(backoff["duration"])
    factor = float(backoff.get("factor") or 1)
    delay *= factor**attempt
    if backoff.get("cap") is not None:
        delay = min(delay, parse_duration(backoff["cap"]))
    return delay


def retries(policy: str, phase: str) -> bool:
    """Whether ``retryPolicy`` retries an attempt that ended in ``phase``."""
    return {
        "Always": True,
        "OnFailure": phase == "Failed",
        "OnError": phase == "Error",
        "OnTransientError": phase == "Error",
    }[policy]


@dataclass(frozen=True)
class RetryRule:
    """A template's ``retryStrategy``: how many retries, and whether an attempt is retried."""

    limit: int
    policy: str
    condition: Condition | None
    backoff: Mapping[str, Any]

    @classmethod
    def of(cls, tmpl: Mapping[str, Any]) -> RetryRule:
        retry = tmpl.get("retryStrategy") or {}
        expression = retry.get("expression")
        condition = parse_retry_expression(str(expression)) if expression else None
        policy = retry.get("retryPolicy") or ("Always" if condition else "OnFailure")
        limit = int(retry["limit"]) if retry else 0
        return cls(limit, policy, condition, retry.get("backoff") or {})

    def past_max(self, seconds: float) -> bool:
        """Whether ``seconds`` since the first attempt pass the backoff's ``maxDuration``."""
        max_duration = self.backoff.get("maxDuration")
        return max_duration is not None and seconds > parse_duration(max_duration)

    def retries(self, last: LastRetry) -> bool:
        """Whether the attempt that ended as ``last`` is retried (the limit aside)."""
        if not retries(self.policy, last.status):
            return False
        return self.condition is None or self.condition(last)


class _Parser:
    """Recursive descent: ``||`` over ``&&`` over comparisons and parentheses."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokens(text)
        self.index = 0

    def _tokens(self, text: str) -> list[tuple[str, Any]]:
        tokens: list[tuple[str, Any]] = []
        position = 0
        while text[position:].strip():
            match = _TOKEN.match(text, position)
            if match is None:
                rest = text[position:].strip()
                raise ValueError(f"cannot read {rest!r} in {text!r} ({_READS})")
            position = match.end()
            kind = next(k for k in ("op", "operand", "sq", "dq", "num") if match[k] is not None)
            value: Any = match[kind]
            if kind == "num":
                value = int(value)
            elif kind in ("sq", "dq"):
                kind = "str"
            elif kind == "operand":
                value = re.sub(r"\s+", "", value)
            tokens.append((kind, value))
        return tokens

    def parse(self) -> Condition:
        condition = self.either()
        if self.index != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.index][1]!r} in {self.text!r}")
        return condition

    def take(self) -> tuple[str, Any]:
        if self.index >= len(self.tokens):
            raise ValueError(f"{self.text!r} ends too early")
        self.index += 1
        return self.tokens[self.index - 1]

    def peek(self) -> Any:
        if self.index < len(self.tokens) and self.tokens[self.index][0] == "op":
            return self.tokens[self.index][1]
        return None

    def either(self) -> Condition:
        left = self.both()
        while self.peek() == "||":
            self.index += 1
            left = _any(left, self.both())
        return left

    def both(self) -> Condition:
        left = self.term()
        while self.peek() == "&&":
            self.index += 1
            left = _all(left, self.term())
        return left

    def term(self) -> Condition:
        if self.peek() == "(":
            self.index += 1
            inner = self.either()
            if self.take() != ("op", ")"):
                raise ValueError(f"unbalanced parentheses in {self.text!r}")
            return inner
        kind, operand = self.take()
        if kind != "operand":
            raise ValueError(f"{operand!r} in {self.text!r} is not a comparison ({_READS})")
        op = self.peek()
        if op not in _COMPARE:
            raise ValueError(f"{operand} in {self.text!r} is not a comparison ({_READS})")
        self.index += 1
        kind, literal = self.take()
        return _comparison(operand, op, kind, literal, self.text)


_READS = "argo-local reads comparisons of asInt(lastRetry.exitCode), asInt(lastRetry.duration) "
_READS += "and lastRetry.status, joined by && and ||"


def _comparison(operand: str, op: str, kind: str, literal: Any, text: str) -> Condition:
    numeric = operand.startswith("asInt(")
    if (numeric and kind != "num") or (not numeric and kind != "str"):
        what = "a number with a string" if numeric else "a string with a number"
        raise ValueError(f"{text!r} compares {what}")
    if not numeric and op not in ("==", "!="):
        raise ValueError(f"{text!r} compares lastRetry.status with {op}")
    compare = _COMPARE[op]
    return lambda last: bool(compare(last.value(operand), literal))


def _any(left: Condition, right: Condition) -> Condition:
    return lambda last: left(last) or right(last)


def _all(left: Condition, right: Condition) -> Condition:
    return lambda last: left(last) and right(last)
