"""The orchestrator: steps, DAG tasks (in order, by target), when, inputs, the exit handler."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local_runner.builders import FLAKY, document, pods, run, script, step
from workflows.local_runner import UnsupportedFeatureError


def test_retries_run_out_and_the_exit_handler_sees_failed(tmp_path: Path) -> None:
    record = tmp_path / "exit.json"
    doc = document(
        [
            {
                "name": "main",
                "steps": [
                    [step("flaky", "flaky", counter=str(tmp_path / "n"), succeed_on="9")],
                    [step("never", "echo", text="must not run")],
                ],
            },
            script("flaky", FLAKY, "counter", "succeed_on", retryStrategy={"limit": "2"}),
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
            {"name": "exit-handler", "steps": [[step("record", "record")]]},
            script(
                "record",
                f"""
                import json, pathlib
                pathlib.Path({str(record)!r}).write_text(json.dumps({{
                    "status": "{{{{workflow.status}}}}",
                    "name": "{{{{workflow.name}}}}",
                    "failures": {{{{workflow.failures}}}},
                }}))
                """,
            ),
        ],
        onExit="exit-handler",
    )
    result = run(doc, tmp_path, workflow_name="synthetic-abcde")
    assert result.phase == "Failed"
    assert "flaky" in (result.message or "") and "exit code 3" in (result.message or "")
    (flaky,) = result.node("flaky")
    assert flaky.attempts == 3 and flaky.phase == "Failed" and flaky.exit_code == 3
    assert "attempt 3 fails" in (flaky.message or "")
    assert result.node("never") == []
    written = json.loads(record.read_text())
    assert written["status"] == "Failed" and written["name"] == "synthetic-abcde"
    assert [f["displayName"] for f in written["failures"]] == ["flaky"]
    (handler,) = result.node("synthetic-abcde.onExit")
    assert handler.phase == "Succeeded"
    assert [n.display_name for n in result.nodes][-2:] == ["synthetic-abcde.onExit", "record"]


def test_the_exit_handler_sees_succeeded(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("hello", "echo", text="hi")]]},
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
            script("exit-handler", "print('{{workflow.status}} {{workflow.parameters.who}}')"),
        ],
        onExit="exit-handler",
        arguments={"parameters": [{"name": "who", "value": "me"}]},
    )
    result = run(doc, tmp_path)
    assert result.phase == "Succeeded"
    assert result.nodes[-1].result == "Succeeded me"


def test_with_param_must_be_a_json_list(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "steps": [
                    [step("list", "list")],
                    [
                        {
                            **step("each", "echo", text="{{item}}"),
                            "withParam": "{{steps.list.outputs.result}}",
                        }
                    ],
                ],
            },
            script("list", "print('not json')"),
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
        ]
    )
    result = run(doc, tmp_path)
    assert result.phase == "Failed"
    (node,) = result.node("each")
    assert node.phase == "Error" and "withParam is not a JSON list" in (node.message or "")


def test_when_skips_steps_items_and_tasks(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "steps": [
                    [
                        {
                            **step("yes", "echo", text="ran"),
                            "when": "'{{workflow.parameters.pick}}' == 'a'",
                        },
                        {
                            **step("no", "echo", text="ran"),
                            "when": "{{workflow.parameters.pick}} == b",
                        },
                        {
                            **step("each", "echo", text="{{item}}"),
                            "withItems": ["a", "b", "c"],
                            "when": "'{{item}}' != '{{workflow.parameters.pick}}'",
                        },
                    ],
                    [
                        step(
                            "after",
                            "echo",
                            text="{{steps.no.status}} {{steps.each.outputs.result}}",
                        )
                    ],
                    [step("dag", "dag")],
                ],
                "outputs": {
                    "parameters": [
                        {
                            "name": "after",
                            "valueFrom": {"parameter": "{{steps.after.outputs.result}}"},
                        }
                    ]
                },
            },
            {
                "name": "dag",
                "dag": {
                    "tasks": [
                        {**step("skipped", "echo", text="x"), "when": "1 == 2"},
                        {**step("next", "echo", text="after a skip"), "depends": "skipped"},
                    ]
                },
            },
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
        ],
        arguments={"parameters": [{"name": "pick", "value": "a"}]},
    )
    result = run(doc, tmp_path)
    assert result.phase == "Succeeded", result.message
    phases = {n.display_name: n.phase for n in result.nodes if n.type in ("Pod", "Skipped")}
    assert phases == {
        "yes": "Succeeded",
        "no": "Skipped",
        "each(0:a)": "Skipped",
        "each(1:b)": "Succeeded",
        "each(2:c)": "Succeeded",
        "after": "Succeeded",
        "skipped": "Skipped",
        "next": "Succeeded",
    }
    (no,) = result.node("no")
    assert no.message == "when 'a == b' evaluated false"
    assert result.outputs == {"after": 'Skipped ["b","c"]'}


def test_dag_runs_in_dependency_order_and_passes_outputs(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            **step(
                                "d",
                                "add",
                                a="{{tasks.b.outputs.result}}",
                                b="{{tasks.c.outputs.result}}",
                            ),
                            "depends": "b && c",
                        },
                        step("a", "add", a="1", b="1"),
                        {
                            **step("b", "add", a="{{tasks.a.outputs.result}}", b="10"),
                            "dependencies": ["a"],
                        },
                        {
                            **step("c", "add", a="{{tasks.a.outputs.result}}", b="100"),
                            "depends": "a.Succeeded",
                        },
                    ]
                },
                "outputs": {
                    "parameters": [
                        {"name": "sum", "valueFrom": {"parameter": "{{tasks.d.outputs.result}}"}}
                    ]
                },
            },
            script("add", "print({{inputs.parameters.a}} + {{inputs.parameters.b}})", "a", "b"),
        ]
    )
    result = run(doc, tmp_path, max_parallel=2)
    assert result.phase == "Succeeded", result.message
    assert result.outputs == {"sum": "114"}
    order = [n.display_name for n in result.nodes if n.type == "Pod"]
    assert order[0] == "a" and order[-1] == "d" and sorted(order[1:3]) == ["b", "c"]


def test_inputs_defaults_enums_and_workflow_arguments(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("show", "show", x="{{workflow.parameters.x}}")]]},
            {
                **script("show", "print('{{inputs.parameters.x}}-{{inputs.parameters.y}}')"),
                "inputs": {"parameters": [{"name": "x"}, {"name": "y", "default": "dflt"}]},
            },
        ],
        arguments={"parameters": [{"name": "x", "enum": ["one", "two"], "value": "one"}]},
    )
    assert run(doc, tmp_path, {"x": "two"}).nodes[-1].result == "two-dflt"
    refused = run(doc, tmp_path, {"x": "three"})
    assert refused.phase == "Error" and "not one of" in (refused.message or "")
    unknown = run(doc, tmp_path, {"z": "1"})
    assert unknown.phase == "Error" and "unknown workflow parameters ['z']" in (
        unknown.message or ""
    )


def diamond(**dag: Any) -> dict[str, Any]:
    """A DAG: a before b before d, a before c; e on its own. Each task prints its text."""
    return document(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        step("a", "echo", text="a"),
                        {**step("b", "echo", text="b"), "depends": "a"},
                        {**step("c", "echo", text="c"), "dependencies": ["a"]},
                        {**step("d", "echo", text="{{tasks.b.outputs.result}}d"), "depends": "b"},
                        step("e", "echo", text="e"),
                    ],
                    **dag,
                },
            },
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
        ],
        arguments={"parameters": [{"name": "target", "value": "c e"}]},
    )


def test_dag_target_runs_the_targets_and_what_they_depend_on(tmp_path: Path) -> None:
    result = run(diamond(target="d"), tmp_path)
    assert result.phase == "Succeeded", result.message
    assert pods(result) == {"a": "Succeeded", "b": "Succeeded", "d": "Succeeded"}
    assert result.node("d")[0].result == "bd"
    # Targets may come from a workflow parameter, separated by spaces as in Argo.
    chosen = run(diamond(target="{{workflow.parameters.target}}"), tmp_path)
    assert chosen.phase == "Succeeded", chosen.message
    assert sorted(pods(chosen)) == ["a", "c", "e"]
    assert sorted(pods(run(diamond(), tmp_path))) == ["a", "b", "c", "d", "e"]


def test_an_undefined_target_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match="target 'zz' is not defined"):
        run(diamond(target="d zz"), tmp_path)
    # Known only once the parameter is: the DAG node errs before any task runs.
    wrong = run(diamond(target="{{workflow.parameters.target}}"), tmp_path, {"target": "c zz"})
    assert wrong.phase == "Error" and pods(wrong) == {}
    assert "dag.target: target 'zz' is not defined" in (wrong.message or "")


def test_a_failure_omits_its_dependents_whatever_their_order(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "dag": {
                    "failFast": False,
                    "tasks": [
                        {**step("c", "echo", text="c"), "depends": "b"},
                        {**step("b", "echo", text="b"), "depends": "a"},
                        step("a", "fail"),
                    ],
                },
            },
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
            script("fail", "import sys; sys.exit(1)"),
        ]
    )
    result = run(doc, tmp_path)
    assert result.phase == "Failed" and pods(result) == {"a": "Failed"}
    (dag,) = [n for n in result.nodes if n.type == "DAG"]
    assert dag.phase == "Failed" and dag.message == "task(s) failed: a"


def test_a_dependency_cycle_is_an_error(tmp_path: Path) -> None:
    doc = document(
        [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {**step("a", "echo"), "depends": "b"},
                        {**step("b", "echo"), "depends": "a"},
                    ]
                },
            },
            script("echo", "print(1)"),
        ]
    )
    result = run(doc, tmp_path)
    assert result.phase == "Error" and "dependency cycle" in (result.message or "")


def test_the_exit_handler_fails_a_run_that_succeeded(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("hello", "echo", text="hi")]]},
            script("echo", "print('{{inputs.parameters.text}}')", "text"),
            script(
                "exit-handler",
                FLAKY,
                "counter",
                "succeed_on",
            ),
        ],
        onExit="exit-handler",
    )
    doc["spec"]["templates"][2]["inputs"]["parameters"] = [
        {"name": "counter", "value": "n"},
        {"name": "succeed_on", "value": "2"},
    ]
    result = run(doc, tmp_path)
    assert result.phase == "Failed"
    assert result.message == "exit handler 'exit-handler': attempt 1 fails (exit code 3)"
    assert json.loads((tmp_path / "n").read_text()) == 1
