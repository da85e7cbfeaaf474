"""The cluster's RayService: golden, determinism, placement, worker groups, strict schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.orchestration.schema_validation import SchemaViolationError
from components.rollout import rayservice
from components.rollout.application import RolloutRefused
from components.rollout.catalog import CatalogError, default_catalog_path
from components.rollout.crd import RAYSERVICE_CRD, crd_problems
from components.rollout.rayservice import render_all, render_rayservice, render_text
from components.rollout.serve_config import ServeConfigError, check_serve_config
from tests.components.rollout.conftest import inventory_with, node_of
from tests.conftest import REPO

APPS = {
    # app: (node, num_gpus, env)
    "llm": ("khelben", 0.95, {}),
    # ROCm: the embeddings app runs torch (the inventory's embedding_backends).
    "embeddings": (
        "drizzt",
        0.8,
        {"HSA_OVERRIDE_GFX_VERSION": "10.3.0", "LLMW_EMBEDDING_BACKEND": "torch"},
    ),
    "reranker": ("danilo", 0.8, {}),
    "whisper": ("elminster", 0.5, {}),
    "tts": ("elminster", 0.5, {}),
}


@pytest.fixture(scope="module")
def document(shipped: Any) -> dict[str, Any]:
    return render_rayservice(shipped)


def serve_config(document: dict[str, Any]) -> dict[str, Any]:
    return yaml.safe_load(document["spec"]["serveConfigV2"])


def groups(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    specs = document["spec"]["rayClusterConfig"]["workerGroupSpecs"]
    return {g["groupName"]: g for g in specs}


def test_golden(shipped: Any, schemas_dir: Path, golden: Any) -> None:
    golden("rollout/ai-inference.rayservice.yaml", render_text(shipped, schemas_dir))


def test_the_same_bytes_from_fresh_processes_with_other_hash_seeds(
    shipped: Any, schemas_dir: Path
) -> None:
    here = render_text(shipped, schemas_dir)
    code = "from components.rollout.rayservice import render_text; print(render_text(), end='')"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    for seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env={**env, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == here


def test_each_application_is_placed_from_the_inventory(document: dict[str, Any]) -> None:
    apps = {a["name"]: a for a in serve_config(document)["applications"]}
    assert list(apps) == list(APPS)
    for name, (node, share, env) in APPS.items():
        app = apps[name]
        assert app["route_prefix"] == f"/{name}"
        assert app["import_path"] == f"serving.{name}:app"
        assert app.get("runtime_env", {}).get("env_vars", {}) == env
        (deployment,) = app["deployments"]
        options = deployment["ray_actor_options"]
        assert options["num_gpus"] == share
        assert options["resources"] == {f"gpu-node-{node}": 0.01}
        assert app["args"]["served_model_name"] == name


def test_head_and_one_worker_group_per_gpu_node(document: dict[str, Any]) -> None:
    cluster = document["spec"]["rayClusterConfig"]
    head = cluster["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"  # no replica on the head
    (head_container,) = head["template"]["spec"]["containers"]
    assert not any("gpu" in key for key in head_container["resources"]["limits"])
    assert head_container["image"] == "ghcr.io/daviestechlabs/llm-workflows:0.1.0"
    expected = {
        "gpu-elminster": ("elminster", "nvidia.com/gpu", "0.1.0-cuda", None),
        "gpu-khelben": ("khelben", "amd.com/gpu", "0.1.0-vllm-rocm", "dedicated"),
        "gpu-drizzt": ("drizzt", "amd.com/gpu", "0.1.0-rocm", None),
        "gpu-danilo": ("danilo", "gpu.intel.com/i915", "0.1.0-xpu", None),
    }
    found = groups(document)
    assert list(found) == list(expected)
    for name, (node, resource, tag, taint) in expected.items():
        group = found[name]
        assert (group["replicas"], group["minReplicas"], group["maxReplicas"]) == (1, 1, 1)
        params = group["rayStartParams"]
        assert params["num-gpus"] == "1"
        assert json.loads(json.loads(params["resources"])) == {f"gpu-node-{node}": 1}
        pod = group["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/hostname": node}
        assert [t["key"] for t in pod.get("tolerations", [])] == ([taint] if taint else [])
        (container,) = pod["containers"]
        assert container["image"].endswith(tag)
        assert container["resources"]["requests"][resource] == 1
        assert container["resources"]["limits"][resource] == 1
    drizzt_env = {
        e["name"]: e for e in found["gpu-drizzt"]["template"]["spec"]["containers"][0]["env"]
    }
    assert drizzt_env["HSA_OVERRIDE_GFX_VERSION"]["value"] == "10.3.0"


def test_never_a_new_cluster_and_no_literal_secret(shipped: Any) -> None:
    settings = shipped.model_copy(
        update={"s3_access_key": "AKIA-LEAK-ME", "s3_secret_key": "very-secret"}
    )
    document = render_rayservice(settings)
    assert document["spec"]["upgradeStrategy"] == {"type": "None"}
    text = rayservice.to_yaml(document)
    assert "AKIA-LEAK-ME" not in text and "very-secret" not in text
    for group in groups(document).values():
        env = {e["name"]: e for e in group["template"]["spec"]["containers"][0]["env"]}
        for key in ("LLMW_S3_ACCESS_KEY", "LLMW_S3_SECRET_KEY"):
            assert "value" not in env[key]
            ref = env[key]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "llmw-minio-credentials", "key": key}


def test_the_strict_schema_refuses_a_misspelt_key(
    document: dict[str, Any], schemas_dir: Path, shipped: Any
) -> None:
    crd = schemas_dir / RAYSERVICE_CRD
    assert crd_problems(document, crd) == []
    broken = json.loads(json.dumps(document))
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][1]["template"]["spec"]["containers"][0][
        "imagee"
    ] = "x"
    broken["spec"]["upgradeStrategy"]["typ"] = "None"
    broken["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["replicas"] = "one"
    problems = crd_problems(broken, crd)
    assert "spec.upgradeStrategy.typ: additional property not allowed" in problems
    assert (
        "spec.rayClusterConfig.workerGroupSpecs[1].template.spec.containers[0].imagee: "
        "additional property not allowed"
    ) in problems
    assert any(
        p.startswith("spec.rayClusterConfig.workerGroupSpecs[0].replicas:") for p in problems
    )
    with pytest.raises(SchemaViolationError, match="imagee"):
        rayservice.validate(broken, shipped, schemas_dir)
    wrong = {**document, "apiVersion": "ray.io/v2"}
    assert crd_problems(wrong, crd) == [
        "apiVersion: 'ray.io/v2' is not served by kuberay-v1.5.1.rayservices.crd.yaml "
        "(ray.io/v1, ray.io/v1alpha1)"
    ]


def test_render_all_validates_before_it_writes(
    shipped: Any, schemas_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (written,) = render_all(tmp_path / "ok", shipped, schemas_dir)
    assert written.name == "ai-inference.rayservice.yaml"
    assert written.read_text() == render_text(shipped, schemas_dir)
    real = rayservice.render_rayservice

    def with_a_typo(settings: Any) -> dict[str, Any]:
        document = real(settings)
        document["spec"]["serveConfigv2"] = document["spec"].pop("serveConfigV2")
        return document

    monkeypatch.setattr(rayservice, "render_rayservice", with_a_typo)
    with pytest.raises(SchemaViolationError, match="serveConfigv2"):
        render_all(tmp_path / "broken", shipped, schemas_dir)
    assert not (tmp_path / "broken").exists()


def test_the_serve_config_rules(document: dict[str, Any]) -> None:
    config = serve_config(document)
    check_serve_config(config)
    twice = json.loads(json.dumps(config))
    twice["applications"][1]["route_prefix"] = "/llm"
    with pytest.raises(ServeConfigError, match="route_prefix listed twice: /llm"):
        check_serve_config(twice)
    typo = json.loads(json.dumps(config))
    typo["applications"][0]["deployments"][0]["ray_actor_options"]["num_gpu"] = 1
    with pytest.raises(ServeConfigError, match="num_gpu"):
        check_serve_config(typo)
    bad_path = json.loads(json.dumps(config))
    bad_path["applications"][0]["import_path"] = "serving llm"
    with pytest.raises(ServeConfigError, match="import_path"):
        check_serve_config(bad_path)
    # What only Ray Serve's own ServeDeploySchema refuses: a negative replica count.
    negative = json.loads(json.dumps(config))
    negative["applications"][0]["deployments"][0]["num_replicas"] = -1
    with pytest.raises(ServeConfigError, match="num_replicas"):
        check_serve_config(negative)


def test_a_replaced_inventory_gets_a_worker_group_per_gpu_node(
    shipped: Any, tmp_path: Path
) -> None:
    def add_node(data: dict[str, Any]) -> None:
        extra = json.loads(json.dumps(node_of(data, "danilo")))
        extra["name"] = "jarlaxle"
        extra["labels"]["kubernetes.io/hostname"] = "jarlaxle"
        data["nodes"].append(extra)

    settings = shipped.model_copy(update={"cluster_inventory": inventory_with(tmp_path, add_node)})
    found = groups(render_rayservice(settings))
    assert list(found)[-1] == "gpu-jarlaxle"
    container = found["gpu-jarlaxle"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/daviestechlabs/llm-workflows:0.1.0-xpu"  # no app yet


def test_a_catalog_that_overfills_a_gpu_is_refused(shipped: Any, tmp_path: Path) -> None:
    data = yaml.safe_load(default_catalog_path().read_text())
    next(a for a in data["apps"] if a["name"] == "tts")["gpu_fraction"] = 0.6
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(data))
    settings = shipped.model_copy(update={"serving_catalog": path})
    with pytest.raises(RolloutRefused, match=r"whisper \(0.5\) already hold a share: .* 1.1 of 1"):
        render_rayservice(settings)
    data["apps"][0]["gpu_fration"] = 0.9
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CatalogError, match=r"apps.0.gpu_fration: Extra inputs"):
        render_rayservice(settings)
