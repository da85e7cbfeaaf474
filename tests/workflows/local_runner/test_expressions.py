"""``when`` conditions and Go durations, as argo-local reads them."""

from __future__ import annotations

import pytest

from workflows.local_runner import evaluate_when, parse_duration
from workflows.local_runner.expressions import when_tokens
from workflows.local_runner.model import NodeError


def test_evaluate_when() -> None:
    assert evaluate_when("'vllm' == 'vllm'") and not evaluate_when("'openai' == 'vllm'")
    assert evaluate_when("heads == heads") and evaluate_when("1 == 1.0")
    assert evaluate_when("a != b && (1 == 2 || true)")
    assert not evaluate_when('"x y" != "x y"')
    for text, problem in [
        ("a", "is not a condition"),
        ("a ==", "ends too early"),
        ("(a == b", "unbalanced"),
        ("a == b c", "unexpected 'c'"),
        ("1 + 2 == 3", "cannot read"),
    ]:
        with pytest.raises(ValueError, match=problem):
            evaluate_when(text)


def test_when_precedence_and_both_sides() -> None:
    # && binds tighter than ||: false || (true && true).
    assert evaluate_when("a == b || c == c && 1 == 1")
    assert not evaluate_when("(a == b || c == c) && 1 == 2")
    # Both sides are read; a side that is not a condition is an error where it is used.
    for text in ("true && word", "word || true", "1 == 1 && 2"):
        with pytest.raises(ValueError, match="is not a condition"):
            evaluate_when(text)
    with pytest.raises(ValueError, match="unexpected '&&'"):
        evaluate_when("&& true")


def test_when_tokens() -> None:
    assert when_tokens("'a b' == \"c\" && 2 != x.y") == [
        ("value", "a b"),
        ("op", "=="),
        ("value", "c"),
        ("op", "&&"),
        ("value", 2.0),
        ("op", "!="),
        ("value", "x.y"),
    ]
    assert when_tokens("true || false") == [("value", True), ("op", "||"), ("value", False)]


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1m30s") == 90
    assert parse_duration("1h") == 3600
    assert parse_duration("250ms") == 0.25
    assert parse_duration(5) == 5
    for bad in ("", "5 s", "1d", "s"):
        with pytest.raises(NodeError, match="is not a duration"):
            parse_duration(bad)
