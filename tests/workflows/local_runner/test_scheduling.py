"""Scheduling: fan-out, parallelism and failFast of steps and DAGs; the DAG's order and target."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local_runner.builders import document, pods, run, script, step
from workflows.local_runner.scheduling import Siblings, fail_fast, ready, targeted

WAIT_S = 60.0  # generous: only reached when something is wrong


def test_with_param_fans_out_and_aggregates_results(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "parallelism": 2,
                "steps": [
                    [step("list", "list")],
                    [
                        {
                            **step("each", "each", item="{{item}}"),
                            "withParam": "{{steps.list.outputs.result}}",
                        }
                    ],
                    [step("collect", "echo", text="{{steps.each.outputs.result}}")],
                ],
                "outputs": {
                    "parameters": [
                        {
                            "name": "all",
                            "valueFrom": {"parameter": "{{steps.collect.outputs.result}}"},
                        },
                        {
                            "name": "params",
                            "valueFrom": {"parameter": "{{steps.each.outputs.parameters.n}}"},
                        },
                    ]
                },
            },
            script("list", "import json; print(json.dumps(['a', 'b', 'c', 'd']))"),
            script(
                "each",
                """
                import json, pathlib
                pathlib.Path("{{inputs.parameters.item}}.n").write_text("n-{{inputs.parameters.item}}")
                if "{{inputs.parameters.item}}" == "d":
                    print("plain text")
                else:
                    print(json.dumps({"item": "{{inputs.parameters.item}}"}))
                """,
                "item",
                outputs={
                    "parameters": [
                        {"name": "n", "valueFrom": {"path": "{{inputs.parameters.item}}.n"}}
                    ]
                },
            ),
            script("echo", "print('''{{inputs.parameters.text}}''')", "text"),
        ]
    )
    result = run(doc, tmp_path, max_parallel=4)
    assert result.phase == "Succeeded", result.message
    names = sorted(n.display_name for n in result.node("each"))
    assert names == ["each(0:a)", "each(1:b)", "each(2:c)", "each(3:d)"]
    # Argo's aggregation: JSON objects stay objects, other results are strings.
    assert json.loads(result.outputs["all"]) == [
        {"item": "a"},
        {"item": "b"},
        {"item": "c"},
        "plain text",
    ]
    assert json.loads(result.outputs["params"]) == ["n-a", "n-b", "n-c", "n-d"]


# a and b each wait for the other to start: both finish only if they run side by side. c fails
# unless a or b has ended when it starts: with a limit of 2 it can start only then. a and b give
# c a moment to start beside them (only a broken limit lets it), which a correct run waits out.
RENDEZVOUS = """
    import pathlib, sys, time
    here, item = pathlib.Path(HERE), "{{inputs.parameters.item}}"

    def appears(path, seconds):
        deadline = time.monotonic() + seconds
        while not path.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    if item == "c":
        if not any((here / f"ended-{x}").exists() for x in "ab"):
            sys.exit("c started while a and b both ran")
        (here / "started-c").write_text("")
    else:
        (here / f"started-{item}").write_text("")
        other = "b" if item == "a" else "a"
        if not appears(here / f"started-{other}", WAIT_S):
            sys.exit(f"{other} did not run beside {item}")
        appears(here / "started-c", 1.0)
        (here / f"ended-{item}").write_text("")
    print(item)
"""


def test_fan_out_runs_side_by_side_within_the_template_parallelism(tmp_path: Path) -> None:
    source = RENDEZVOUS.replace("HERE", repr(str(tmp_path))).replace("WAIT_S", str(WAIT_S))
    doc = document(
        [
            {
                "name": "main",
                "parallelism": 2,
                "steps": [
                    [{**step("each", "each", item="{{item}}"), "withItems": ["a", "b", "c"]}]
                ],
            },
            script("each", source, "item"),
        ]
    )
    # The template's parallelism (2) holds even though the runner allows 4.
    result = run(doc, tmp_path, max_parallel=4)
    assert result.phase == "Succeeded", result.message
    assert [n.result for n in result.node("each")] == ["a", "b", "c"]


def fan_out(**main: Any) -> dict[str, Any]:
    """One child at a time over x, boom (fails), y, z; then a step that needs them all."""
    return document(
        [
            {
                "name": "main",
                "parallelism": 1,
                "steps": [
                    [
                        {
                            **step("each", "each", item="{{item}}"),
                            "withItems": ["x", "boom", "y", "z"],
                        }
                    ],
                    [step("after", "each", item="after")],
                ],
                **main,
            },
            script(
                "each",
                "import sys; print('{{inputs.parameters.item}}');"
                " sys.exit(1 if '{{inputs.parameters.item}}' == 'boom' else 0)",
                "item",
            ),
        ]
    )


def test_a_steps_fan_out_runs_every_child_by_default(tmp_path: Path) -> None:
    # Argo's Template.failFast is off unless true: every child runs, then the step fails.
    result = run(fan_out(), tmp_path)
    assert result.phase == "Failed"
    assert pods(result) == {
        "each(0:x)": "Succeeded",
        "each(1:boom)": "Failed",
        "each(2:y)": "Succeeded",
        "each(3:z)": "Succeeded",
    }
    assert run(fan_out(failFast=False), tmp_path).node("each(3:z)")[0].phase == "Succeeded"


def test_fail_fast_starts_no_child_after_a_failure(tmp_path: Path) -> None:
    result = run(fan_out(failFast=True), tmp_path)
    assert result.phase == "Failed"
    assert pods(result) == {"each(0:x)": "Succeeded", "each(1:boom)": "Failed"}
    (main,) = [n for n in result.nodes if n.type == "Steps"]
    assert main.phase == "Failed" and main.message == "child of step group 0 failed"


def dag(first: str = "boom", template_fail_fast: bool | None = None, **dag: Any) -> dict[str, Any]:
    """boom (fails) and solo in the first wave, ``first`` first, one task at a time; then what
    depends on each."""
    second = "solo" if first == "boom" else "boom"
    tasks = [
        step(first, "task", task=first),
        step(second, "task", task=second),
        {**step("after-boom", "task", task="after-boom"), "depends": "boom"},
        {**step("after-solo", "task", task="after-solo"), "depends": "solo"},
    ]
    main: dict[str, Any] = {"name": "main", "parallelism": 1, "dag": {"tasks": tasks, **dag}}
    if template_fail_fast is not None:
        main["failFast"] = template_fail_fast
    return document(
        [
            main,
            script(
                "task",
                "import sys; sys.exit(1 if '{{inputs.parameters.task}}' == 'boom' else 0)",
                "task",
            ),
        ]
    )


def test_a_dag_fails_fast_by_default(tmp_path: Path) -> None:
    # Once boom has failed no task starts: not solo, later in its wave, nor after-solo.
    result = run(dag(), tmp_path)
    assert result.phase == "Failed" and pods(result) == {"boom": "Failed"}
    assert pods(run(dag(failFast=True), tmp_path)) == {"boom": "Failed"}
    solo_first = run(dag("solo"), tmp_path)
    assert pods(solo_first) == {"solo": "Succeeded", "boom": "Failed"}
    (main,) = [n for n in solo_first.nodes if n.type == "DAG"]
    assert main.phase == "Failed" and main.message == "task(s) failed: boom"
    # The template's own failFast stops it even when dag.failFast is false.
    stopped = run(dag(template_fail_fast=True, failFast=False), tmp_path)
    assert pods(stopped) == {"boom": "Failed"}


@pytest.mark.parametrize("first", ["boom", "solo"])
def test_a_dag_without_fail_fast_runs_every_branch(tmp_path: Path, first: str) -> None:
    result = run(dag(first, failFast=False), tmp_path)
    assert result.phase == "Failed"
    assert pods(result) == {"boom": "Failed", "solo": "Succeeded", "after-solo": "Succeeded"}
    (main,) = [n for n in result.nodes if n.type == "DAG"]
    assert main.message == "task(s) failed: boom"


# --- the units ----------------------------------------------------------------------------------


def jobs_for(
    started: list[str], behaviours: dict[str, Callable[[], bool]]
) -> list[Callable[[], bool]]:
    def job(name: str) -> bool:
        started.append(name)
        return behaviours[name]()

    return [functools.partial(job, name) for name in behaviours]


@pytest.mark.parametrize("limit", [1, 2])
def test_siblings_stop_after_a_failure_when_fail_fast(limit: int) -> None:
    siblings = Siblings(limit, fail_fast=True)
    started: list[str] = []
    # With a limit of 2, "boom" fails once "slow" has started, and "slow" ends only once the
    # failure is known: "never" could start only if a failure did not stop new starts.
    slow_started = threading.Event()

    def slow() -> bool:
        slow_started.set()
        return siblings.failed.wait(WAIT_S)

    behaviours = {
        "boom": lambda: limit == 2 and not slow_started.wait(WAIT_S),
        "slow": slow,
        "never": lambda: True,
    }
    results = siblings.run(jobs_for(started, behaviours), bool)
    assert sorted(started) == (["boom", "slow"] if limit == 2 else ["boom"])
    assert results == ([False, True] if limit == 2 else [False])
    assert siblings.stopped
    assert siblings.run(jobs_for(started, {"later": lambda: True}), bool) == []


@pytest.mark.parametrize("limit", [1, 2])
def test_siblings_without_fail_fast_run_every_job(limit: int) -> None:
    siblings = Siblings(limit, fail_fast=False)
    started: list[str] = []
    behaviours = {"boom": lambda: False, "b": lambda: True, "c": lambda: True}
    assert siblings.run(jobs_for(started, behaviours), bool) == [False, True, True]
    assert sorted(started) == ["b", "boom", "c"]
    assert siblings.failed.is_set() and not siblings.stopped


def test_siblings_run_side_by_side_up_to_the_limit() -> None:
    both = threading.Barrier(2, timeout=WAIT_S)  # broken when the two never meet
    siblings = Siblings(2, fail_fast=True)
    results = siblings.run([lambda: both.wait() + 10, lambda: both.wait() + 10], lambda r: True)
    assert sorted(results) == [10, 11]


def test_fail_fast_follows_argo_defaults() -> None:
    assert not fail_fast({"steps": []}) and fail_fast({"steps": [], "failFast": True})
    assert fail_fast({"dag": {"tasks": []}})
    assert not fail_fast({"dag": {"tasks": [], "failFast": False}})
    assert fail_fast({"dag": {"tasks": [], "failFast": False}, "failFast": True})


def test_targets_and_readiness() -> None:
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": []}
    order = ["c", "b", "a", "d"]
    assert targeted(order, deps, "") == order
    assert targeted(order, deps, "c") == ["c", "b", "a"]
    assert targeted(order, deps, " b  d ") == ["b", "a", "d"]
    phase: dict[str, str] = {}
    assert ready(order, deps, phase) == ["a", "d"]
    phase.update(a="Failed", d="Skipped")
    assert ready(order, deps, phase) == []
    assert phase == {"a": "Failed", "d": "Skipped", "b": "Omitted", "c": "Omitted"}
