"""argo-local's resource templates against the CRD-validating Kubernetes API server (real HTTP):
create/apply/patch/get, successCondition and failureCondition as Argo reads them, output
parameters, a status that never comes, and the conditions' syntax."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.rollout.rayservice import render_rayservice
from components.rollout.serve_config import dump_serve_config, parse_serve_config
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.workflows.local_runner.builders import document, pods, run
from workflows.local_runner import UnsupportedFeatureError, check_supported
from workflows.local_runner.conditions import check, parse_condition

# 62 characters: a label key's name part takes at most 63, so Argo refuses the same path for
# embeddings (64); see test_conditions_read_as_kubernetes_label_selectors.
RAY_APP = "status.activeServiceStatus.applicationStatuses.reranker.status"
LOADED = "status.modelStatus.states.activeModelState == Loaded"
FAILED_LOAD = "status.modelStatus.transitionStatus == BlockedByFailedLoad"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path / "cluster", ready_delay_s=0.3) as running:
        running.api.seed(render_rayservice(running.settings()))
        yield running


def isvc(version: str, name: str = "embeddings") -> str:
    return textwrap.dedent(f"""\
        apiVersion: serving.kserve.io/v1beta1
        kind: InferenceService
        metadata:
          name: {name}
          annotations: {{serving.kserve.io/deploymentMode: RawDeployment}}
        spec:
          predictor:
            model:
              modelFormat: {{name: huggingface}}
              storageUri: s3://models/store/{name}/{version}/
        """)


def resource(name: str, action: str, manifest: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "resource": {"action": action, "manifest": manifest, **fields}}


def node_of(result: Any, template: str) -> Any:
    return next(n for n in result.nodes if n.template == template)


def execute(cluster: FakeCluster, tmp_path: Path, templates: list[dict[str, Any]]) -> Any:
    doc = document(templates)
    doc["metadata"]["namespace"] = "ai-ml"
    env = {"LLMW_KUBECONFIG": str(cluster.kubeconfig), "RESOURCE_STATE_CHECK_INTERVAL": "50ms"}
    return run(doc, tmp_path, env=env)


def test_create_waits_for_the_success_condition_and_reads_outputs(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    create = resource("main", "create", isvc("v1"), successCondition=LOADED,
                      failureCondition=FAILED_LOAD)  # fmt: skip
    create["outputs"] = {"parameters": [
        {"name": "url", "valueFrom": {"jsonPath": "{.status.url}"}},
        {"name": "mode", "valueFrom": {"jsonPath": "{.status.conditions[0].type}"}},
        {"name": "missing", "valueFrom": {"jsonPath": "{.status.nothing}", "default": "none"}},
    ]}  # fmt: skip
    result = execute(cluster, tmp_path, [create])
    assert result.phase == "Succeeded", result.message
    node = node_of(result, "main")
    assert node.parameters == {"url": "http://embeddings.ai-ml.example.com", "mode": "Ready",
                               "missing": "none"}  # fmt: skip
    assert node.seconds >= 0.3  # it waited for the controller
    live = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert live and live["status"]["modelStatus"]["states"]["activeModelState"] == "Loaded"


def test_a_failure_condition_fails_the_step_and_the_exit_handler_runs(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.api.outcomes["v9"] = "deploy_failed"
    create = resource("create", "create", isvc("v9"), successCondition=LOADED,
                      failureCondition=FAILED_LOAD)  # fmt: skip
    delete = resource("cleanup", "delete", isvc("v9"))
    doc = document([{"name": "main", "steps": [[{"name": "create", "template": "create"}]]},
                    create, delete], onExit="cleanup")  # fmt: skip
    doc["metadata"]["namespace"] = "ai-ml"
    env = {"LLMW_KUBECONFIG": str(cluster.kubeconfig), "RESOURCE_STATE_CHECK_INTERVAL": "50ms"}
    result = run(doc, tmp_path, env=env)
    assert result.phase == "Failed"
    assert pods(result)["create"] == "Failed"
    assert (
        "failure condition 'status.modelStatus.transitionStatus==BlockedByFailedLoad' evaluated "
        "true" in str(result.message)
    )
    assert pods(result)[f"{result.name}.onExit"] == "Succeeded"
    assert cluster.api.get("inferenceservices", "ai-ml", "embeddings") is None


def test_a_status_that_never_comes_fails_at_the_template_timeout(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    cluster.api.outcomes["v7"] = "never_ready"
    create = resource("main", "create", isvc("v7"), successCondition=LOADED)
    create["activeDeadlineSeconds"] = 1
    result = execute(cluster, tmp_path, [create])
    assert result.phase == "Failed"
    assert "exceeded activeDeadlineSeconds (1s): neither condition matched yet" in str(
        result.message
    )
    assert 1.0 <= node_of(result, "main").seconds < 5


def test_patch_then_get_on_the_generation_the_patch_made(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    """The generation-safe pattern: the patch's output generation, then a get whose success
    condition asks for it as observed and the application RUNNING in the same read."""
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj is not None
    config = parse_serve_config(obj["spec"]["serveConfigV2"])
    for app in config["applications"]:
        if app["name"] == "reranker":
            app["args"]["model_version"] = "v2"
    patch = {"spec": {"serveConfigV2": dump_serve_config(config)}}
    patch_step = resource("patch", "patch", yaml.safe_dump(patch), mergeStrategy="merge",
                          flags=["rayservice", "ai-inference", "-n", "ai-ml"])  # fmt: skip
    patch_step["outputs"] = {"parameters": [
        {"name": "generation", "valueFrom": {"jsonPath": "{.metadata.generation}"}}]}  # fmt: skip
    wait = resource(
        "wait",
        "get",
        "",
        flags=["rayservices.ray.io", "ai-inference"],
        successCondition="status.observedGeneration == {{inputs.parameters.g}}, "
        f"{RAY_APP} == RUNNING",
        failureCondition=f"{RAY_APP} == DEPLOY_FAILED",
    )
    wait["inputs"] = {"parameters": [{"name": "g"}]}
    main = {"name": "main", "steps": [
        [{"name": "patch", "template": "patch"}],
        [{"name": "wait", "template": "wait", "arguments": {"parameters": [
            {"name": "g", "value": "{{steps.patch.outputs.parameters.generation}}"}]}}],
    ]}  # fmt: skip
    result = execute(cluster, tmp_path, [main, patch_step, wait])
    assert result.phase == "Succeeded", result.message
    assert node_of(result, "patch").parameters == {"generation": "2"}
    live = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert live and live["status"]["observedGeneration"] == 2
    assert live["status"]["activeServiceStatus"]["applicationStatuses"]["reranker"] == {
        **live["status"]["activeServiceStatus"]["applicationStatuses"]["reranker"],
        "status": "RUNNING",
    }


def test_a_success_condition_alone_is_met_by_the_status_before_the_patch(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    """As in Argo: the first read comes right after the patch, before the controller has seen
    it, so a condition on the application's status alone passes on the old status."""
    cluster.api.outcomes["v3"] = "never_ready"
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj is not None
    config = parse_serve_config(obj["spec"]["serveConfigV2"])
    for app in config["applications"]:
        if app["name"] == "reranker":
            app["args"]["model_version"] = "v3"
    manifest = {"apiVersion": "ray.io/v1", "kind": "RayService",
                "metadata": {"name": "ai-inference"},
                "spec": {"serveConfigV2": dump_serve_config(config)}}  # fmt: skip
    step = resource("main", "patch", yaml.safe_dump(manifest), mergeStrategy="merge",
                    successCondition=f"{RAY_APP} == RUNNING")  # fmt: skip
    result = execute(cluster, tmp_path, [step])
    assert result.phase == "Succeeded"  # although v3 never comes up
    assert node_of(result, "main").seconds < 0.3


def test_apply_creates_then_patches_three_way_and_strategic_is_refused(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    labelled = isvc("v1").replace("  annotations:", "  labels: {team: a}\n  annotations:")
    assert execute(cluster, tmp_path, [resource("main", "apply", labelled)]).phase == "Succeeded"
    live = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert live and live["metadata"]["labels"] == {"team": "a"}
    result = execute(cluster, tmp_path / "2", [resource("main", "apply", isvc("v2"))])
    assert result.phase == "Succeeded", result.message
    live = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert live and "labels" not in live["metadata"]  # the last apply set it; this one does not
    assert live["spec"]["predictor"]["model"]["storageUri"] == "s3://models/store/embeddings/v2/"
    strategic = execute(cluster, tmp_path / "3", [resource("main", "patch", isvc("v3"))])
    assert strategic.phase == "Failed"
    assert "415 UnsupportedMediaType" in str(strategic.message)
    invalid = execute(cluster, tmp_path / "4", [resource("main", "create", isvc("v1", "other")
                      .replace("modelFormat", "modelFormats"))])  # fmt: skip
    assert invalid.phase == "Failed"
    assert "422 Invalid" in str(invalid.message) and "modelFormats" in str(invalid.message)


def test_json_patch_with_flags(cluster: FakeCluster, tmp_path: Path) -> None:
    ops = [{"op": "add", "path": "/metadata/annotations", "value": {"owner": "argo"}}]
    step = resource("main", "patch", yaml.safe_dump(ops), mergeStrategy="json",
                    flags=["rayservice", "ai-inference"])  # fmt: skip
    result = execute(cluster, tmp_path, [step])
    assert result.phase == "Succeeded", result.message
    live = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert live and live["metadata"]["annotations"] == {"owner": "argo"}


def test_conditions_read_as_kubernetes_label_selectors() -> None:
    obj = {"status": {"phase": "Running", "ready": True, "replicas": 3, "items": [{"a": "x"}],
                      "empty": None}}  # fmt: skip
    holds = {
        "status.phase == Running": True, "status.phase = Running": True,
        "status.phase != Running": False, "status.missing != Running": True,
        "status.phase in (Pending,Running)": True, "status.phase notin (Running)": False,
        "status.ready == true": True, "status.replicas > 2": True, "status.replicas < 3": False,
        "status.phase > 2": False, "status.items.0.a == x": True, "status.empty": True,
        "!status.missing": True, "status.missing": False, "status.empty == ": True,
        "status.phase == Running, status.replicas > 5": False,
    }  # fmt: skip
    for condition, expected in holds.items():
        verdict = check(obj, parse_condition(condition), [])
        assert (verdict == "succeeded") is expected, condition
    failure = parse_condition("status.phase == Failed, status.replicas > 1")
    assert check(obj, [], failure) == "failed: failure condition 'status.replicas>1' evaluated true"
    for bad, says in {
        "status.activeServiceStatus.applicationStatuses.embeddings.status == RUNNING": (
            "name part must be no more than 63 characters"
        ),
        "status.phase == has space": "expected: ',' or 'end of string'",
        "status.replicas > many": "must be an integer",
        "status.phase == (": "expected: identifier",
    }.items():
        with pytest.raises(ValueError, match=says):
            parse_condition(bad)


def test_the_feature_gate_names_what_a_resource_template_cannot_do() -> None:
    cases = {
        "manifestFrom": {"action": "create", "manifestFrom": {"artifact": {"name": "m"}}},
        "action: 'exec'": {"action": "exec", "manifest": "{}"},
        "successCondition: unable to parse": {"action": "get", "manifest": "{}",
                                               "successCondition": "status.x in"},
    }  # fmt: skip
    for says, spec in cases.items():
        with pytest.raises(UnsupportedFeatureError, match=says):
            check_supported(document([{"name": "main", "resource": spec}]))
