"""The compiled model-rollout pipeline: its DAG inside an exit handler, the artifacts the Kubeflow
UI shows (Model, Metrics, Markdown, HTML), retries, no caching, the cluster's model store."""

from __future__ import annotations

from typing import Any

import yaml

from pipelines.compiler import check_ir, compile_text

NAME = "model-rollout"


def compiled(settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    text = compile_text(NAME, settings)
    check_ir(text, NAME)
    spec, platform = list(yaml.safe_load_all(text))
    return spec, platform


def test_the_rollout_runs_inside_an_exit_handler_whose_task_is_the_output(
    default_settings: Any,
) -> None:
    spec, _ = compiled(default_settings)
    root = spec["root"]["dag"]
    assert set(root["tasks"]) == {"exit-handler-1", "rollout-conclude"}
    conclude = root["tasks"]["rollout-conclude"]
    assert conclude["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert conclude["dependentTasks"] == ["exit-handler-1"]
    output = root["outputs"]["parameters"]["Output"]["valueFromParameter"]
    assert output["producerSubtask"] == "rollout-conclude"
    inputs = spec["components"]["comp-rollout-conclude"]["inputDefinitions"]["parameters"]
    assert inputs["status"]["parameterType"] == "TASK_FINAL_STATUS"


def test_the_artifacts_the_kubeflow_ui_shows(default_settings: Any) -> None:
    spec, _ = compiled(default_settings)
    components = spec["components"]

    def artifacts(component: str) -> dict[str, str]:
        outputs = components[component]["outputDefinitions"].get("artifacts", {})
        return {name: a["artifactType"]["schemaTitle"] for name, a in outputs.items()}

    assert artifacts("comp-rollout-stage") == {"staged_model": "system.Model"}
    documents = {"metrics": "system.Metrics", "summary": "system.Markdown", "report": "system.HTML"}
    assert artifacts("comp-rollout-gate") == documents
    assert artifacts("comp-rollout-collection") == documents


def test_retries_caching_and_the_cluster_store(default_settings: Any) -> None:
    spec, _ = compiled(default_settings)
    tasks: dict[str, Any] = {}
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    tasks.update(spec["root"]["dag"]["tasks"])
    retried = {name for name, task in tasks.items() if "retryPolicy" in task}
    assert retried == {
        "rollout-stage", "rollout-render", "rollout-baseline", "rollout-collection",
        "rollout-conclude",
    }  # fmt: skip
    for name, task in tasks.items():
        if name.startswith("rollout-"):
            assert task["cachingOptions"] == {}, name  # caching off: each step reads what serves
    executors = spec["deploymentSpec"]["executors"]
    for label, executor in executors.items():
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert env["LLMW_MODEL_STORE_URI"] == default_settings.cluster_model_store_uri, label
