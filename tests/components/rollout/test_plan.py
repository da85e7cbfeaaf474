"""The plan of a rollout: staged nothing, applied nothing, said what, where, and why not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from components.rollout.application import memory_need_gb
from components.rollout.crd import INFERENCESERVICE_CRD, RAYSERVICE_CRD, crd_problems
from components.rollout.plan import RolloutRequest, plan_rollout
from components.rollout.rayservice import render_all
from components.rollout.staging import stage_model
from components.storage.s3 import minio_client
from tests.components.rollout.conftest import inventory_with, node_of


@pytest.fixture
def local(shipped: Any, tmp_path: Path) -> Any:
    return shipped.model_copy(update={"model_store_uri": str(tmp_path / "store")})


def request(model_dir: Path, **fields: Any) -> RolloutRequest:
    values: dict[str, Any] = {"source": str(model_dir), "app": "embeddings", "version": "v2"}
    values.update(fields)
    return RolloutRequest(**values)


def test_a_plan_stages_nothing_and_shows_the_change(
    model_dir: Path, local: Any, tmp_path: Path, schemas_dir: Path
) -> None:
    plan = plan_rollout(request(model_dir), local)
    assert not (tmp_path / "store").exists()  # nothing staged
    assert plan["refused"] is None and plan["dry_run"] is True
    assert plan["current"] == "rendered"
    stage = plan["stage"]
    assert stage["action"] == "stage" and stage["files"] == 3
    assert stage["into"] == str((tmp_path / "store").resolve() / "embeddings" / "v2") + "/"
    assert plan["model"] == {"name": "embeddings", "version": "v2", "uri": stage["into"]}
    assert plan["memory_from"] == "weights (4096 B) x 1.2"
    assert plan["placement"]["node"] == "drizzt"
    assert plan["placement"]["env"] == {
        "HSA_OVERRIDE_GFX_VERSION": "10.3.0",
        "LLMW_EMBEDDING_BACKEND": "torch",  # ROCm's embedding runtime (the inventory's)
    }
    diff = plan["diff"]
    assert diff.startswith(
        "--- current/rayservice/ai-inference\n+++ rollout/rayservice/ai-inference"
    )
    assert f"+        model: {stage['into']}" in diff
    assert "-        model: BAAI/bge-large-en-v1.5" in diff
    obj = plan["object"]
    assert crd_problems(obj, schemas_dir / RAYSERVICE_CRD) == []
    apps = yaml.safe_load(obj["spec"]["serveConfigV2"])["applications"]
    assert next(a for a in apps if a["name"] == "embeddings")["args"]["model"] == stage["into"]


def test_a_plan_from_the_compiled_file_and_a_staged_version(
    model_dir: Path, local: Any, tmp_path: Path
) -> None:
    (compiled,) = render_all(tmp_path / "compiled", local)
    stage_model(str(model_dir), "bge", "v2", local)
    plan = plan_rollout(request(model_dir, name="bge", current=compiled), local)
    assert plan["current"] == str(compiled)
    assert plan["stage"]["action"] == "unchanged"
    assert plan["model"]["name"] == "bge"


def test_the_memory_estimate_from_the_weights_decides_the_placement(
    model_dir: Path, local: Any
) -> None:
    assert memory_need_gb(10_000_000_000, 1.2) == 12.0
    assert memory_need_gb(1, 1.0) == 0.001
    big = local.model_copy(update={"rollout_memory_factor": 2e7})  # 4096 B of weights: 81.9 GB
    plan = plan_rollout(request(model_dir, app="llm"), big)
    assert plan["memory_gb"] == 81.92
    assert plan["refused"]["reason"] == "placement"
    assert "no GPU has 86.232 GB for vllm" in plan["refused"]["message"]
    assert "object" not in plan and plan["stage"]["action"] == "stage"
    stated = plan_rollout(request(model_dir, app="llm", memory_gb=40.0), big)
    assert stated["refused"] is None and stated["memory_from"] == "--memory-gb"
    assert stated["placement"]["node"] == "khelben"


@pytest.mark.parametrize(
    ("fields", "reason", "says"),
    [
        ({"app": "chat", "source": "/no/such/folder"}, "unknown_app", "unknown app 'chat'"),
        ({"source": "/no/such/folder"}, "source", "does not exist"),
        ({"node": "khelben", "memory_gb": 1.0}, "placement", "llm (0.95) already hold a share"),
        ({"target": "kserve", "canary": 10}, "placement", "could never schedule"),
        ({"target": "kserve"}, "placement", "a Serverless revision change"),
    ],
)
def test_refusals_are_part_of_the_plan(
    model_dir: Path, local: Any, fields: dict[str, Any], reason: str, says: str
) -> None:
    if fields.get("target") == "kserve" and "canary" not in fields:
        local = local.model_copy(update={"kserve_deployment_mode": "Serverless"})
    plan = plan_rollout(request(model_dir, **fields), local)
    assert plan["refused"]["reason"] == reason, plan["refused"]
    assert says in plan["refused"]["message"]


def test_a_version_with_other_bytes_is_refused(model_dir: Path, local: Any) -> None:
    stage_model(str(model_dir), "embeddings", "v2", local)
    (model_dir / "config.json").write_text("{}")
    plan = plan_rollout(request(model_dir), local)
    assert plan["refused"]["reason"] == "version_conflict"
    assert "config.json differs" in plan["refused"]["message"]


def test_a_kserve_canary_where_two_gpus_fit(
    model_dir: Path, s3_settings: Any, tmp_path: Path, schemas_dir: Path
) -> None:
    client = minio_client(s3_settings)
    if not client.bucket_exists("plan-models"):
        client.make_bucket("plan-models")

    def two_gpus(data: dict[str, Any]) -> None:
        node_of(data, "drizzt")["gpu"]["count"] = 2

    settings = s3_settings.model_copy(
        update={
            "model_store_uri": "s3://plan-models",
            "cluster_inventory": inventory_with(tmp_path, two_gpus),
            "serving_catalog": None,
        }
    )
    plan = plan_rollout(request(model_dir, target="kserve", canary=20), settings)
    assert plan["refused"] is None, plan["refused"]
    assert plan["kserve_mode"] == "RawDeployment"
    obj = plan["object"]
    assert crd_problems(obj, schemas_dir / INFERENCESERVICE_CRD) == []
    assert (
        obj["spec"]["canary"][0]["predictor"]["model"]["storageUri"]
        == "s3://plan-models/embeddings/v2/"
    )
    assert obj["spec"]["predictor"]["model"]["storageUri"] == "hf://BAAI/bge-large-en-v1.5"
    assert "+  canary:" in plan["diff"]
    assert list(client.list_objects("plan-models", recursive=True)) == []  # nothing staged
