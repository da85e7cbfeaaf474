"""retryStrategy as Argo reads it: policies, backoff, and the ``expression`` over ``lastRetry``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local_runner.builders import document, run, script
from workflows.local_runner import UnsupportedFeatureError, check_supported
from workflows.local_runner.retrying import LastRetry, parse_retry_expression

# Exits with the code its counter file says for each attempt (the last one repeats).
EXITS = """
    import pathlib, sys
    counter = pathlib.Path("{{inputs.parameters.counter}}")
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    codes = [int(c) for c in "{{inputs.parameters.codes}}".split(",")]
    code = codes[min(attempt, len(codes)) - 1]
    print(f"bad input: attempt {attempt} exits {code}", file=sys.stderr)
    sys.exit(code)
"""


def exits(tmp_path: Path, codes: str, **retry: Any) -> dict[str, Any]:
    doc = document([script("main", EXITS, "counter", "codes", retryStrategy=retry)])
    doc["spec"]["templates"][0]["inputs"]["parameters"] = [
        {"name": "counter", "value": str(tmp_path / "n")},
        {"name": "codes", "value": codes},
    ]
    return doc


NOT_BAD_INPUT = "asInt(lastRetry.exitCode) != 2"
FAILED_3 = LastRetry(3, "Failed", 1)
SLOW = LastRetry(1, "Failed", 30.7)


@pytest.mark.parametrize(
    ("codes", "policy", "attempts", "exit_code"),
    [
        ("2", None, 1, 2),  # bad input: never retried
        ("1,1,1,1", None, 4, 1),  # anything else: every retry
        ("1,2", None, 2, 2),  # retried until it says bad input
        ("1,0", "OnFailure", 2, 0),
        ("2", "Always", 1, 2),  # the policy AND the expression
    ],
)
def test_the_expression_decides_each_retry(
    tmp_path: Path, codes: str, policy: str | None, attempts: int, exit_code: int
) -> None:
    retry: dict[str, Any] = {"limit": 3, "expression": NOT_BAD_INPUT}
    if policy is not None:
        retry["retryPolicy"] = policy
    result = run(exits(tmp_path, codes, **retry), tmp_path)
    (node,) = result.nodes
    assert (node.attempts, node.exit_code) == (attempts, exit_code)
    if exit_code:
        suffix = f", {attempts} attempts" if attempts > 1 else ""
        expected = f"bad input: attempt {attempts} exits {exit_code} (exit code {exit_code}"
        assert node.message == expected + suffix + ")"


def test_status_and_duration_are_read_too(tmp_path: Path) -> None:
    # Failed, quickly: the first two retry; `lastRetry.status == "Error"` never holds.
    quick = 'lastRetry.status == "Failed" && asInt(lastRetry.duration) < 60'
    result = run(exits(tmp_path / "a", "1", limit=2, expression=quick), tmp_path / "a")
    assert result.nodes[0].attempts == 3
    never = '(lastRetry.status == "Error") || asInt(lastRetry.duration) >= 600'
    result = run(exits(tmp_path / "b", "1", limit=2, expression=never), tmp_path / "b")
    assert result.nodes[0].attempts == 1


@pytest.mark.parametrize(
    ("text", "last", "expected"),
    [
        (NOT_BAD_INPUT, LastRetry(2, "Failed", 1), False),
        (NOT_BAD_INPUT, LastRetry(1, "Failed", 1), True),
        (NOT_BAD_INPUT, LastRetry(None, "Error", 1), True),  # no exit code: -1, as in Argo
        ("asInt(lastRetry.exitCode) > 1", LastRetry(None, "Error", 1), False),
        ("asInt(lastRetry.exitCode) <= 1 || lastRetry.status != 'Error'", FAILED_3, True),
        ("asInt(lastRetry.duration) >= 30 && asInt(lastRetry.duration) < 31", SLOW, True),
        ("(asInt(lastRetry.exitCode) == 3)", LastRetry(3, "Failed", 0), True),
    ],
)  # fmt: skip
def test_expressions(text: str, last: LastRetry, expected: bool) -> None:
    assert parse_retry_expression(text)(last) is expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("lastRetry.message matches 'pod deleted'", r"lastRetry\.message"),
        ("asInt(lastRetry.exitCode) != '2'", "compares a number with a string"),
        ("lastRetry.status < 'Failed'", "compares lastRetry.status with <"),
        ("asInt(lastRetry.exitCode)", "is not a comparison"),
        ("{{inputs.parameters.safe}} == true", r"\{\{"),
        ("asInt(lastRetry.exitCode) != 2 &&", "ends too early"),
        ("lastRetry.exitCode != 2", r"lastRetry\.exitCode"),
    ],
)
def test_anything_else_is_refused_naming_it(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_retry_expression(text)
    doc = document([script("main", "print(1)", retryStrategy={"limit": 1, "expression": text})])
    with pytest.raises(UnsupportedFeatureError, match=r"\(main\): retryStrategy\.expression"):
        check_supported(doc)


def test_a_failed_step_says_its_own_error_line(tmp_path: Path) -> None:
    source = """
        import atexit, sys
        print("loading", file=sys.stderr)
        atexit.register(lambda: print("cleanup done", file=sys.stderr))  # after the traceback
        try:
            raise KeyError("inner")
        except KeyError:
            raise ValueError("the collection does not fit the model")
    """
    doc = document([script("main", source), script("quiet", "import sys; sys.exit(5)")])
    result = run(doc, tmp_path)
    (node,) = result.nodes
    # Not a flattened traceback: the line that says what was wrong.
    assert node.message == "ValueError: the collection does not fit the model (exit code 1)"
    doc["spec"]["entrypoint"] = "quiet"
    (quiet,) = run(doc, tmp_path).nodes
    assert quiet.message == "Error (exit code 5)"  # nothing on stderr: as Argo says it
