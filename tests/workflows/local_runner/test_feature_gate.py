"""The feature gate: what argo-local cannot run is refused before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.workflows.local_runner.builders import document, script, step
from workflows.local_runner import ArgoLocalRunner, UnsupportedFeatureError, check_supported


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
    # resource templates run (test_resource_template.py); an artifact manifest does not
    resource = document([{"name": "main", "resource": {"action": "create", "manifestFrom": {}}}])
    with pytest.raises(UnsupportedFeatureError, match=r"resource: .*manifestFrom"):
        ArgoLocalRunner(resource, work_dir=tmp_path)


def dag(tasks: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return document(
        [{"name": "main", "dag": {"tasks": tasks, **fields}}, script("echo", "print(1)")]
    )


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (document([{"name": "main", "steps": [[]]}], onExit="x", hooks={}), r"^spec: .*hooks"),
        (document([script("main", "print(1)", sidecars=[])]), r"\(main\): .*sidecars"),
        (document([{"name": "main", "steps": [], "dag": {}}]), "exactly one of steps, dag"),
        (dag([{**step("a", "echo"), "continueOn": {}}]), r"dag\.tasks\[0\]: .*continueOn"),
        (dag([step("a", "echo")], onExit="x"), r"\.dag: .*onExit"),
        (dag([step("a", "echo")], target="a b"), r"dag\.target: target 'b' is not defined"),
        (dag([step("a", "echo")], failFast="no"), r"dag\.failFast: 'no' is not a boolean"),
        (document([script("main", "print(1)", failFast=1)]), r"failFast: 1 is not a boolean"),
        (
            document([{"name": "main", "container": {"image": "alpine"}}]),
            "container without a command",
        ),
        (
            document([{**script("main", "print(1)"), "inputs": {"artifacts": [{"name": "a"}]}}]),
            "input artifacts",
        ),
    ],
)
def test_each_refusal_names_the_field(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match=problem):
        check_supported(doc)


def test_what_argo_local_honours_passes() -> None:
    check_supported(
        document(
            [
                {
                    "name": "main",
                    "failFast": True,
                    "parallelism": 2,
                    "nodeSelector": {"kubernetes.io/hostname": "drizzt"},
                    "dag": {
                        "failFast": False,
                        "target": "b {{workflow.parameters.more}}",
                        "tasks": [step("a", "echo"), {**step("b", "echo"), "depends": "a"}],
                    },
                },
                script(
                    "echo",
                    "print(1)",
                    retryStrategy={"limit": 2, "expression": "asInt(lastRetry.exitCode) != 2"},
                    timeout="1m",
                ),
            ],
            podGC={"strategy": "OnPodSuccess"},
        )
    )
