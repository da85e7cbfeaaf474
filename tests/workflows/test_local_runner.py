"""argo-local semantics on small synthetic templates: retries, fan-out, outputs, exit handler."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from workflows.local_runner import (
    ArgoLocalRunner,
    LocalWorkflowRun,
    UnsupportedFeatureError,
    evaluate_when,
    parse_duration,
)


def script(name: str, source: str, *params: str, **extra: Any) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": name,
        "script": {
            "image": "python:3.12",
            "command": ["python"],
            "source": textwrap.dedent(source),
        },
        **extra,
    }
    if params:
        template["inputs"] = {"parameters": [{"name": p} for p in params]}
    return template


def step(name: str, template: str, **arguments: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "template": template}
    if arguments:
        out["arguments"] = {"parameters": [{"name": k, "value": v} for k, v in arguments.items()]}
    return out


def document(templates: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "synthetic", "namespace": "test"},
        "spec": {"entrypoint": "main", "templates": templates, **spec},
    }


def run(
    doc: dict[str, Any], tmp_path: Path, args: dict[str, str] | None = None, **kw: Any
) -> LocalWorkflowRun:
    kw.setdefault("max_backoff_s", 0.0)
    runner = ArgoLocalRunner(doc, work_dir=tmp_path / "work", cwd=tmp_path, **kw)
    return runner.run(args or {})


FLAKY = """
    import pathlib, sys
    counter = pathlib.Path("{{inputs.parameters.counter}}")
    attempt = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(attempt))
    if attempt < {{inputs.parameters.succeed_on}}:
        print(f"attempt {attempt} fails", file=sys.stderr)
        sys.exit(3)
    print(f"succeeded on attempt {attempt}")
"""


def test_a_failing_step_is_retried_then_succeeds(tmp_path: Path) -> None:
    retry = {"limit": 3, "retryPolicy": "OnFailure", "backoff": {"duration": "5s", "factor": 2}}
    doc = document(
        [
            {
                "name": "main",
                "steps": [[step("flaky", "flaky", counter=str(tmp_path / "n"), succeed_on="3")]],
                "outputs": {
                    "parameters": [
                        {
                            "name": "said",
                            "valueFrom": {"parameter": "{{steps.flaky.outputs.result}}"},
                        }
                    ]
                },
            },
            script("flaky", FLAKY, "counter", "succeed_on", retryStrategy=retry),
        ]
    )
    started = time.monotonic()
    result = run(doc, tmp_path)
    assert time.monotonic() - started < 5  # the 5 s and 10 s backoffs are cut to max_backoff_s
    assert result.phase == "Succeeded", result.message
    (node,) = result.node("flaky")
    assert node.attempts == 3 and node.phase == "Succeeded"
    assert result.outputs == {"said": "succeeded on attempt 3"}
    # Each attempt keeps its script and log.
    logs = sorted((result.work_dir / "nodes").glob("*flaky/attempt-*/stderr.log"))
    assert [p.read_text().strip() for p in logs] == ["attempt 1 fails", "attempt 2 fails", ""]


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
                f"""
                import json, pathlib, time
                log = pathlib.Path({str(tmp_path / "spans")!r})
                start = time.time(); time.sleep(0.6); end = time.time()
                with log.open("a") as out:
                    out.write(json.dumps([start, end]) + "\\n")
                pathlib.Path("{{{{inputs.parameters.item}}}}.n").write_text("n-{{{{inputs.parameters.item}}}}")
                if "{{{{inputs.parameters.item}}}}" == "d":
                    print("plain text")
                else:
                    print(json.dumps({{"item": "{{{{inputs.parameters.item}}}}"}}))
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
    # The template's parallelism (2) holds even though the runner allows 4.
    spans = [json.loads(line) for line in (tmp_path / "spans").read_text().splitlines()]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 2


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


def test_unresolved_variables_are_errors(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("show", "show", x="{{steps.nope.outputs.result}}")]]},
            script("show", "print('{{inputs.parameters.x}}')", "x"),
        ]
    )
    result = run(doc, tmp_path)
    assert result.phase == "Failed"
    assert "unresolved variable {{steps.nope.outputs.result}}" in (result.nodes[-1].message or "")


def test_template_env_is_dropped_but_the_runner_env_applies(tmp_path: Path) -> None:
    doc = document(
        [
            {"name": "main", "steps": [[step("show", "show")]]},
            {
                **script(
                    "show",
                    "import os; print(os.environ.get('LLMW_X'), os.environ.get('FROM_SECRET'))",
                ),
                "nodeSelector": {"kubernetes.io/hostname": "drizzt"},
            },
        ]
    )
    doc["spec"]["templates"][1]["script"]["env"] = [
        {"name": "LLMW_X", "value": "cluster"},
        {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
    ]
    result = run(doc, tmp_path, env={"LLMW_X": "local", "PATH": "/usr/bin:/bin"})
    assert result.nodes[-1].result == "local None"


def test_unsupported_features_are_refused_before_running(tmp_path: Path) -> None:
    when = document(
        [
            {"name": "main", "steps": [[{**step("a", "echo"), "when": "{{a}} =~ b"}]]},
            script("echo", "print(1)"),
        ]
    )
    with pytest.raises(UnsupportedFeatureError, match=r"steps\[0\]\[0\]\.when: cannot read"):
        ArgoLocalRunner(when, work_dir=tmp_path)
    unbounded = document([script("main", "print(1)", retryStrategy={"retryPolicy": "Always"})])
    with pytest.raises(UnsupportedFeatureError, match="without a limit"):
        ArgoLocalRunner(unbounded, work_dir=tmp_path)
    expression = document([script("main", "print('{{=sprig.upper(workflow.name)}}')")])
    with pytest.raises(UnsupportedFeatureError, match="expressions"):
        ArgoLocalRunner(expression, work_dir=tmp_path)
    policy = document([script("main", "print(1)", retryStrategy={"limit": 1, "retryPolicy": "X"})])
    with pytest.raises(UnsupportedFeatureError, match="retryPolicy 'X'"):
        ArgoLocalRunner(policy, work_dir=tmp_path)
    resource = document([{"name": "main", "resource": {"action": "create", "manifest": "{}"}}])
    with pytest.raises(UnsupportedFeatureError, match="resource"):
        ArgoLocalRunner(resource, work_dir=tmp_path)


def test_parse_duration() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("1m30s") == 90
    assert parse_duration("1h") == 3600
    assert parse_duration("250ms") == 0.25
    assert parse_duration(5) == 5
