"""What an Argo operator expects of every rendered WorkflowTemplate: CPU and memory on every step
from its profile, deadlines, TTL, pod GC, the job's own ServiceAccount with least-privilege RBAC,
the collection mutex, and retries that leave bad input alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.exit_codes import EXIT_BAD_INPUT
from components.orchestration.pod_security import RUN_AS_UID
from components.orchestration.schema_validation import SchemaViolationError, validate_document
from components.orchestration.step_resources import step_resources
from components.registry import JOBS
from components.settings import Settings
from workflows import common, rbac
from workflows.registry import TEMPLATES
from workflows.render import RBAC_FILE, rbac_text, render_all, render_template

PROCESS_KINDS = ("script", "container")
REPO = Path(__file__).resolve().parents[2]


def leaf_templates(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in document["spec"]["templates"] if any(k in t for k in PROCESS_KINDS)]


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_step_has_requests_limits_and_a_deadline(
    name: str, default_settings: Settings
) -> None:
    document = render_template(name, default_settings)
    steps = leaf_templates(document)
    assert steps
    for template in steps:
        body = next(template[k] for k in PROCESS_KINDS if k in template)
        sized = step_resources(name, template["name"], default_settings)
        resources = body.get("resources") or {}
        assert resources.get("requests", {}).get("cpu") == sized.cpu_request, template["name"]
        assert resources["requests"]["memory"] == sized.memory_request, template["name"]
        assert resources["limits"]["cpu"] == sized.cpu_limit, template["name"]
        assert resources["limits"]["memory"] == sized.memory_limit, template["name"]
        assert template["activeDeadlineSeconds"] == sized.timeout_s, template["name"]
        retry = template.get("retryStrategy")
        if retry is not None:
            assert retry["retryPolicy"] == "OnFailure", template["name"]
            assert retry["expression"] == f"asInt(lastRetry.exitCode) != {EXIT_BAD_INPUT}"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_has_its_account_deadline_ttl_and_pod_gc(
    name: str, default_settings: Settings
) -> None:
    spec = render_template(name, default_settings)["spec"]
    assert spec["serviceAccountName"] == common.service_account(name) == f"llmw-{name}"
    assert spec["activeDeadlineSeconds"] == default_settings.workflow_timeout_s == 86400
    assert spec["ttlStrategy"] == {"secondsAfterFailure": 604800, "secondsAfterSuccess": 86400}
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_pod_runs_as_the_images_non_root_user(name: str, default_settings: Settings) -> None:
    document = render_template(name, default_settings)
    assert document["spec"]["securityContext"] == {
        "fsGroup": 10001,
        "runAsGroup": 10001,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for template in leaf_templates(document):
        body = next(template[k] for k in PROCESS_KINDS if k in template)
        assert body["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        }, template["name"]


def test_the_images_run_as_that_user() -> None:
    recipes = sorted((REPO / "images").glob("*.Containerfile"))
    assert recipes
    for recipe in recipes:
        users = re.findall(r"^USER\s+(\S+)", recipe.read_text(), flags=re.MULTILINE)
        assert users and users[-1] == str(RUN_AS_UID), recipe.name


def test_writers_of_a_collection_share_its_mutex(default_settings: Settings) -> None:
    mutex = {"mutexes": [{"name": "llmw-collection-{{workflow.parameters.collection}}"}]}
    for name in ("document-ingestion", "document-removal"):
        spec = render_template(name, default_settings)["spec"]
        assert spec["synchronization"] == mutex, name
        # The mutex names a parameter the template has.
        assert "collection" in {p["name"] for p in spec["arguments"]["parameters"]}
    assert "synchronization" not in render_template("batch-inference", default_settings)["spec"]


def test_profiles_and_deadlines_follow_the_settings(clean_env: None) -> None:
    settings = Settings(
        step_profiles={"model": {"memory_limit": "16Gi", "timeout_s": 600}},
        step_profile_by_step={"document-ingestion/report": "model"},
        workflow_timeout_s=7200,
        argo_ttl_after_success_s=60,
    )
    document = render_template("document-ingestion", settings)
    templates = {t["name"]: t for t in document["spec"]["templates"]}
    for name in ("ingest-shard", "report"):
        assert templates[name]["script"]["resources"]["limits"]["memory"] == "16Gi", name
        assert templates[name]["activeDeadlineSeconds"] == 600, name
    assert templates["plan"]["script"]["resources"]["limits"]["memory"] == "2Gi"
    assert document["spec"]["activeDeadlineSeconds"] == 7200
    assert document["spec"]["ttlStrategy"]["secondsAfterSuccess"] == 60


def test_rbac_golden(default_settings: Settings, schemas_dir: Path, golden: Any) -> None:
    golden(f"argo/{RBAC_FILE}", rbac_text(default_settings, schemas_dir))


def test_rbac_binds_every_account_to_the_executor_role_only(
    default_settings: Settings, schemas_dir: Path
) -> None:
    documents = list(yaml.safe_load_all(rbac_text(default_settings, schemas_dir)))
    accounts = {d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount"}
    assert accounts == {common.service_account(name) for name in TEMPLATES}
    (executor,) = [
        d for d in documents if d["kind"] == "Role" and d["metadata"]["name"] == rbac.EXECUTOR_ROLE
    ]
    # What Argo's executor (v3.4 and later) needs: report outputs through task results.
    assert executor["rules"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        }
    ]
    (binding,) = [
        d
        for d in documents
        if d["kind"] == "RoleBinding" and d["metadata"]["name"] == rbac.EXECUTOR_ROLE
    ]
    assert {s["name"] for s in binding["subjects"]} == accounts
    # No job without resource templates gets anything more.
    for name in ("document-ingestion", "document-removal", "batch-inference"):
        account = common.service_account(name)
        assert not [
            d
            for d in documents
            if d["metadata"]["name"] == account and d["kind"] != "ServiceAccount"
        ]
    for document in documents:
        assert validate_document(document, schemas_dir / rbac.K8S_SCHEMA_FILE) == []


def resource_document(*templates: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "rollout", "namespace": "workflows"},
        "spec": {"serviceAccountName": "llmw-rollout", "templates": list(templates)},
    }


RAYSERVICE = "apiVersion: ray.io/v1\nkind: RayService\nmetadata:\n  name: ai-inference\n"
ISVC = (
    "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nmetadata:\n"
    "  name: {{inputs.parameters.app}}\n  namespace: serving\nspec: {}\n"
)


def test_resource_templates_get_the_verbs_their_actions_need() -> None:
    document = resource_document(
        {"name": "read", "resource": {"action": "get", "manifest": RAYSERVICE}},
        {
            "name": "change",
            "resource": {
                "action": "patch",
                "manifest": RAYSERVICE + "spec:\n  serveConfigV2: {{inputs.parameters.x}}\n",
                "successCondition": "status.serviceStatus == Running",
            },
        },
        {"name": "deploy", "resource": {"action": "apply", "manifest": ISVC}},
        {"name": "plain", "script": {"image": "x", "command": ["python"], "source": ""}},
    )
    assert rbac.resource_rules(document) == {
        # A name that is a variable cannot restrict the rule; create never can.
        "serving": [
            {
                "apiGroups": ["serving.kserve.io"],
                "resources": ["inferenceservices"],
                "verbs": ["create", "get", "patch"],
            }
        ],
        "workflows": [
            {
                "apiGroups": ["ray.io"],
                "resources": ["rayservices"],
                "resourceNames": ["ai-inference"],
                "verbs": ["get", "patch"],
            }
        ],
    }
    documents = rbac.rbac_documents({"rollout": document})
    roles = {(d["kind"], d["metadata"]["namespace"], d["metadata"]["name"]) for d in documents}
    assert ("Role", "serving", "llmw-rollout") in roles
    assert ("RoleBinding", "serving", "llmw-rollout") in roles
    binding = next(
        d
        for d in documents
        if d["kind"] == "RoleBinding" and d["metadata"]["namespace"] == "serving"
    )
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "llmw-rollout", "namespace": "workflows"}
    ]


@pytest.mark.parametrize(
    ("resource", "problem"),
    [
        (
            {"action": "patch", "manifest": "apiVersion: v1\nkind: Secret\n"},
            "no RBAC known for Secret",
        ),
        ({"action": "scale", "manifest": RAYSERVICE}, "resource action 'scale'"),
        (
            {"action": "get", "manifestFrom": {"artifact": {"name": "m"}}},
            "without an inline manifest",
        ),
        (
            {"action": "get", "manifest": RAYSERVICE + "  namespace: '{{inputs.parameters.ns}}'\n"},
            "namespace must be literal",
        ),
    ],
)
def test_what_rbac_cannot_be_derived_for_is_refused(resource: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        rbac.resource_rules(resource_document({"name": "t", "resource": resource}))


def test_a_bad_rbac_document_is_refused_and_nothing_written(
    default_settings: Settings,
    schemas_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = rbac.rbac_documents

    def misspelt(documents: Any) -> list[dict[str, Any]]:
        out = real(documents)
        out[0]["metadata"]["namepsace"] = "x"
        return out

    monkeypatch.setattr("workflows.render.rbac_documents", misspelt)
    with pytest.raises(SchemaViolationError, match=r"metadata\.namepsace: additional property"):
        render_all(tmp_path / "out", default_settings, schemas_dir)
    assert not (tmp_path / "out").exists()


def test_every_job_is_rendered(default_settings: Settings) -> None:
    assert set(TEMPLATES) <= set(JOBS)
