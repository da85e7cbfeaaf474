"""The kubernetes engine's KServe target against the CRD-validating API server: the model staged
into a real S3 store (moto through the minio client, as KServe fetches from MinIO), an
InferenceService created, patched, gated over real HTTP, promoted (a canary taken to all
traffic) or restored to the previous spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.rollout.application import RolloutRefused
from components.rollout.gate import GateThresholds
from components.rollout.history import read_history
from components.rollout.kube_rollout import start_kube, status_kube, undo_kube
from components.rollout.plan import RolloutRequest
from components.rollout.rollout_flow import GateOptions
from components.settings import Settings
from components.storage.s3 import minio_client
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.components.rollout.conftest import inventory_with, node_of, write_model

OPTIONS = GateOptions(GateThresholds(min_success_rate=1.0, max_quality_drop=0.1), rounds=1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def settings(cluster: FakeCluster, s3_settings: Settings, tmp_path: Path) -> Settings:
    client = minio_client(s3_settings)
    if not client.bucket_exists("models"):
        client.make_bucket("models")
    for obj in client.list_objects("models", recursive=True):
        client.remove_object("models", obj.object_name)
    s3 = {k: getattr(s3_settings, k) for k in ("s3_endpoint", "s3_access_key", "s3_secret_key",
                                                "s3_region", "s3_secure")}  # fmt: skip
    return cluster.settings(**s3, model_store_uri="s3://models/store")


def roll(settings: Settings, model: Path, version: str, **request: Any) -> dict[str, Any]:
    rollout = RolloutRequest(str(model), "embeddings", version, target="kserve", **request)
    return start_kube(rollout, settings, OPTIONS)


def live(cluster: FakeCluster) -> dict[str, Any]:
    found = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert found is not None
    return found


def storage(obj: dict[str, Any], where: str = "predictor") -> str:
    spec = obj["spec"]
    predictor = spec["canary"][0]["predictor"] if where == "canary" else spec["predictor"]
    return str(predictor["model"]["storageUri"])


def test_rawdeployment_recreate_promotes_and_restores(
    cluster: FakeCluster, settings: Settings, tmp_path: Path
) -> None:
    model = write_model(tmp_path / "model")
    first = roll(settings, model, "v1")
    assert first["outcome"] == "promoted", first
    assert first["previous_version"] is None and first["gate"]["old"] is None
    obj = live(cluster)
    assert storage(obj) == "s3://models/store/embeddings/v1/"
    assert obj["spec"]["predictor"]["deploymentStrategy"] == {"type": "Recreate"}
    assert obj["metadata"]["annotations"]["llmw.io/model-version"] == "v1"
    assert obj["status"]["conditions"][0] == {**obj["status"]["conditions"][0], "status": "True"}

    second = roll(settings, model, "v2")
    assert second["outcome"] == "promoted" and second["previous_version"] == "v1"
    cluster.routes.broken.add("v3")
    third = roll(settings, model, "v3")
    assert third["outcome"] == "rolled_back", third
    assert third["reason"].startswith("gate failed: success_rate")
    assert storage(live(cluster)) == "s3://models/store/embeddings/v2/"
    assert cluster.routes.versions["/kserve/embeddings"] == "v2"

    cluster.api.outcomes["v4"] = "deploy_failed"
    fourth = roll(settings, model, "v4")
    assert fourth["outcome"] == "rolled_back"
    assert "BlockedByFailedLoad: ModelLoadFailed v4: injected by the test" in fourth["reason"]
    assert storage(live(cluster)) == "s3://models/store/embeddings/v2/"
    status = status_kube("embeddings", settings, target="kserve")
    assert status["kube"] == {"status": "serving", "message": "Ready", "version": "v2"}

    assert undo_kube("embeddings", settings, target="kserve")["serving"] == "v1"
    assert storage(live(cluster)) == "s3://models/store/embeddings/v1/"
    events = read_history("embeddings", settings)
    assert {(e.get("engine"), e.get("target")) for e in events} == {("kubernetes", "kserve")}


def test_a_canary_on_two_gpus_of_a_kind_is_promoted_to_all_traffic(
    cluster: FakeCluster, settings: Settings, tmp_path: Path
) -> None:
    two = inventory_with(tmp_path, lambda data: node_of(data, "drizzt")["gpu"].update(count=2))
    settings = settings.model_copy(update={"cluster_inventory": two})
    model = write_model(tmp_path / "model")
    serverless = {"kserve_mode": "Serverless"}
    with pytest.raises(RolloutRefused, match="no InferenceService ai-ml/embeddings"):
        roll(settings, model, "v1", canary=20, **serverless)
    assert roll(settings, model, "v1", **serverless)["outcome"] == "promoted"

    second = roll(settings, model, "v2", canary=20, **serverless)
    assert second["outcome"] == "promoted", second
    obj = live(cluster)
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]  # promoted: all traffic
    assert storage(obj) == "s3://models/store/embeddings/v2/"
    traffic = obj["status"]["components"]["predictor"]["traffic"]
    assert [(t["percent"], t["latestRevision"]) for t in traffic] == [(100, True)]
    patches = [p for m, p, _ in cluster.api.requests if m == "PATCH"]
    assert len(patches) == 2  # the canary at 20 %, then its promotion

    cluster.routes.broken.add("v3")
    third = roll(settings, model, "v3", canary=20, **serverless)
    assert third["outcome"] == "rolled_back"
    obj = live(cluster)
    assert storage(obj) == "s3://models/store/embeddings/v2/"
    assert "canaryTrafficPercent" not in obj["spec"]["predictor"]

    with pytest.raises(RolloutRefused, match="runs as Serverless; KServe does not change"):
        roll(settings, model, "v5", kserve_mode="RawDeployment")


def test_a_rawdeployment_canary_keeps_the_live_predictor(
    cluster: FakeCluster, settings: Settings, tmp_path: Path
) -> None:
    two = inventory_with(tmp_path, lambda data: node_of(data, "drizzt")["gpu"].update(count=2))
    settings = settings.model_copy(update={"cluster_inventory": two})
    model = write_model(tmp_path / "model")
    assert roll(settings, model, "v1")["outcome"] == "promoted"
    before = live(cluster)["spec"]["predictor"]
    cluster.api.outcomes["v2"] = "never_ready"
    slow = settings.model_copy(update={"rollout_ready_timeout_s": 1.0})
    waited = roll(slow, model, "v2", canary=10)
    assert waited["outcome"] == "rolled_back" and "not serving after 1 s" in waited["reason"]
    assert live(cluster)["spec"] == {"predictor": before}
    third = roll(settings, model, "v3", canary=10)
    assert third["outcome"] == "promoted", third
    spec = live(cluster)["spec"]
    assert "canary" not in spec and storage(live(cluster)) == "s3://models/store/embeddings/v3/"
