"""The model-rollout WorkflowTemplate's shape: stage -> read -> render -> baseline -> apply (a
resource patch waiting on the app's status) -> gate -> promote, the collection branch, and the
exit handler that restores when the run did not succeed; RBAC derived from it."""

from __future__ import annotations

from typing import Any

import pytest

from workflows import model_rollout
from workflows.rbac import resource_rules
from workflows.render import render_template

NAME = "model-rollout"


def document(settings: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = render_template(NAME, settings)
    return rendered


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def steps_of(template: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(s["name"], s["template"], s.get("when")) for group in template["steps"] for s in group]


def test_the_course_of_a_run(default_settings: Any) -> None:
    doc = document(default_settings)
    templates = by_name(doc)
    rayservice, collection = (
        "{{workflow.parameters.target}} == rayservice",
        "{{workflow.parameters.target}} == collection",
    )
    assert steps_of(templates["main"]) == [
        ("stage", "stage", None),
        ("read-rayservice", "read-rayservice", rayservice),
        ("render", "render", rayservice),
        ("baseline", "baseline", rayservice),
        ("apply", "apply-change", rayservice),
        ("gate", "gate", rayservice),
        ("promote", "promote", rayservice),
        ("collection", "collection", collection),
        ("outcome", "outcome", None),
    ]
    report = templates["main"]["outputs"]["parameters"][0]
    assert report["valueFrom"]["parameter"] == "{{steps.outcome.outputs.result}}"
    exit_steps = steps_of(templates[doc["spec"]["onExit"]])
    assert exit_steps == [
        ("record-status", "record-status", None),
        ("restore", "restore", "{{workflow.status}} != Succeeded && " + rayservice),
    ]
    restore = "{{steps.restore-plan.outputs.parameters.action}} == restore"
    assert steps_of(templates["restore"]) == [
        ("read-rayservice", "read-rayservice", None),
        ("restore-plan", "restore-plan", None),
        ("restore-change", "restore-change", restore),
        ("restored", "restored", restore),
    ]
    assert doc["spec"]["synchronization"] == {
        "mutexes": [{"name": "llmw-rollout-{{workflow.parameters.app}}"}]
    }


def test_the_resource_templates(default_settings: Any) -> None:
    templates = by_name(document(default_settings))
    read = templates["read-rayservice"]
    assert read["resource"]["action"] == "get"
    assert {p["name"]: p["valueFrom"]["jsonPath"] for p in read["outputs"]["parameters"]} == {
        "spec": "{.spec}",
        "resource-version": "{.metadata.resourceVersion}",
        "generation": "{.metadata.generation}",
    }
    apply = templates["apply-change"]["resource"]
    assert (apply["action"], apply["mergeStrategy"]) == ("patch", "merge")
    assert apply["successCondition"] == "{{inputs.parameters.success-condition}}"
    assert apply["failureCondition"] == "{{inputs.parameters.failure-condition}}"
    assert "kind: RayService\n" in apply["manifest"] and "name: ai-inference\n" in apply["manifest"]
    # The render step gives the serve config and the conditions the apply step waits on.
    render = {p["name"] for p in templates["render"]["outputs"]["parameters"]}
    assert render == {"serve-config", "success-condition", "failure-condition"}
    assert "retryStrategy" not in templates["apply-change"]  # a patch applied is never re-sent
    assert "retryStrategy" not in templates["promote"]
    assert templates["restore-change"]["retryStrategy"]["limit"] == 3  # the restore must happen
    artifacts = {a["name"]: a["s3"]["key"] for a in templates["gate"]["outputs"]["artifacts"]}
    assert artifacts == {
        "summary": "model-rollout/{{workflow.name}}/summary.md",
        "report": "model-rollout/{{workflow.name}}/report.html",
    }


def test_rbac_is_get_and_patch_on_the_one_rayservice(default_settings: Any) -> None:
    assert resource_rules(document(default_settings)) == {
        "ai-ml": [
            {
                "apiGroups": ["ray.io"],
                "resources": ["rayservices"],
                "resourceNames": ["ai-inference"],
                "verbs": ["get", "patch"],
            }
        ]
    }


def test_steps_use_the_cluster_model_store(default_settings: Any) -> None:
    templates = by_name(document(default_settings))
    for name in ("stage", "render", "gate", "promote", "restore-plan", "restored", "outcome"):
        env = {e["name"]: e.get("value") for e in templates[name]["script"]["env"]}
        assert env["LLMW_MODEL_STORE_URI"] == default_settings.cluster_model_store_uri, name


@pytest.mark.parametrize(
    ("target", "engine", "words"),
    [
        (
            "kserve",
            "kubernetes",
            "target kserve: the WorkflowTemplate rolls out onto the RayService",
        ),
        (
            "rayservice",
            "ray-local",
            "engine ray-local: the WorkflowTemplate patches the RayService",
        ),
    ],
)
def test_what_the_template_cannot_do_is_refused_first(
    target: str, engine: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from components.registry import get_job

    values = {name: "" for name in get_job(NAME).parameter_names()}
    given = {"model": "/m", "app": "llm", "version": "v1", "target": target, "engine": engine}
    defaults = {"canary": "0", "memory_gb": "0", "gpu_fraction": "0", "min_success_rate": "1",
                "max_p95_ms": "0", "max_quality_drop": "0.1", "min_quality": "0", "rounds": "1",
                "sources": "[]", "keep": "1", "keep_failed": "false", "top_k": "5",
                "max_recall_drop": "0.05", "max_mrr_drop": "0.05"}  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        model_rollout.stage(**{**values, **defaults, **given})
    assert exited.value.code == 2  # bad input: not retried
    assert words in capsys.readouterr().err
