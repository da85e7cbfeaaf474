"""The kubernetes engine on the RayService, against the CRD-validating API server over real HTTP,
with real staging into a local store and the gate over real HTTP against the routes the fake
cluster serves: promote, a failed gate, DEPLOY_FAILED, a status that never comes, 409 conflicts,
undo, status, history, and the refusals."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.rollout.application import RolloutRefused
from components.rollout.gate import GateThresholds
from components.rollout.history import read_history
from components.rollout.kube_rollout import start_kube, status_kube, undo_kube
from components.rollout.plan import RolloutRequest
from components.rollout.ray_local import VERSION_HEADER
from components.rollout.rayservice import render_rayservice
from components.rollout.rollout_flow import GateOptions
from components.rollout.serve_config import parse_serve_config
from components.settings import Settings
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.components.rollout.conftest import write_model

OPTIONS = GateOptions(GateThresholds(min_success_rate=1.0, max_quality_drop=0.1), rounds=1)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path / "cluster") as running:
        running.api.seed(render_rayservice(running.settings()))
        yield running


def roll(settings: Settings, model: Path, version: str, **request: Any) -> dict[str, Any]:
    rollout = RolloutRequest(source=str(model), app="embeddings", version=version, **request)
    return start_kube(rollout, settings, OPTIONS)


def live_apps(cluster: FakeCluster) -> dict[str, dict[str, Any]]:
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj is not None
    config = parse_serve_config(obj["spec"]["serveConfigV2"])
    return {a["name"]: a for a in config["applications"]}


def app_status(cluster: FakeCluster) -> str:
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj is not None
    return str(obj["status"]["activeServiceStatus"]["applicationStatuses"]["embeddings"]["status"])


def answering(cluster: FakeCluster) -> str | None:
    """The version the embeddings route answers with, as serving/'s header says."""
    response = httpx.get(f"{cluster.routes.root_url}/embeddings/v1/models", timeout=10)
    assert response.status_code == 200
    return response.headers[VERSION_HEADER] or None


def test_rollout_promotes_rolls_back_and_undoes(cluster: FakeCluster, tmp_path: Path) -> None:
    settings = cluster.settings()
    model = write_model(tmp_path / "model")
    others = {k: v for k, v in live_apps(cluster).items() if k != "embeddings"}

    first = roll(settings, model, "v1")
    assert first["outcome"] == "promoted", first
    assert (first["engine"], first["target"], first["previous_version"]) == (
        "kubernetes", "rayservice", None,
    )  # fmt: skip
    assert first["gate"]["passed"] and first["gate"]["old"] is not None
    entry = live_apps(cluster)["embeddings"]
    assert entry["args"]["model_version"] == "v1"
    assert entry["args"]["model"] == f"{(tmp_path / 'cluster/models/embeddings/v1').resolve()}/"
    assert entry["deployments"][0]["ray_actor_options"]["resources"] == {"gpu-node-drizzt": 0.01}
    assert app_status(cluster) == "RUNNING" and answering(cluster) == "v1"

    cluster.api.conflicts(2)  # another writer changes the RayService before each of two patches
    second = roll(settings, model, "v2")
    assert second["outcome"] == "promoted", second
    assert cluster.api.count("PATCH", 409) == 2
    obj = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert obj and obj["metadata"]["annotations"]["other-writer.example.com/touched"] == "0"
    assert answering(cluster) == "v2"

    cluster.routes.broken.add("v3")  # loads, then answers 500: the gate fails
    third = roll(settings, model, "v3")
    assert third["outcome"] == "rolled_back", third
    assert third["reason"].startswith("gate failed: success_rate 0.000")
    page = Path(third["gate_report"]).read_text()  # stored whether the gate passes or not
    assert "v3" in third["gate_report"] and "<svg" in page and "success_rate" in page
    assert live_apps(cluster)["embeddings"]["args"]["model_version"] == "v2"
    assert app_status(cluster) == "RUNNING" and answering(cluster) == "v2"

    cluster.api.outcomes["v4"] = "deploy_failed"
    fourth = roll(settings, model, "v4")
    assert fourth["outcome"] == "rolled_back" and "gate" not in fourth
    assert (
        "embeddings: DEPLOY_FAILED: Deploying application embeddings failed" in (fourth["reason"])
    )
    assert answering(cluster) == "v2"

    cluster.api.outcomes["v5"] = "never_ready"
    fifth = roll(settings.model_copy(update={"rollout_ready_timeout_s": 1.0}), model, "v5")
    assert fifth["outcome"] == "rolled_back"
    assert "not serving after 1 s (embeddings: DEPLOYING" in fifth["reason"]
    assert live_apps(cluster)["embeddings"]["args"]["model_version"] == "v2"
    assert app_status(cluster) == "RUNNING" and answering(cluster) == "v2"
    assert {k: v for k, v in live_apps(cluster).items() if k != "embeddings"} == others

    events = read_history("embeddings", settings)
    assert [(e["event"], e["version"]) for e in events if e["event"] != "gate"] == [
        ("started", "v1"), ("promoted", "v1"), ("started", "v2"), ("promoted", "v2"),
        ("started", "v3"), ("rolled_back", "v3"), ("started", "v4"), ("rolled_back", "v4"),
        ("started", "v5"), ("rolled_back", "v5"),
    ]  # fmt: skip
    assert {e["engine"] for e in events} == {"kubernetes"}
    status = status_kube("embeddings", settings)
    assert status["kube"] == {"status": "RUNNING", "version": "v2", "message": ""}
    assert (status["current_version"], status["previous_version"]) == ("v2", "v1")
    assert status["interrupted"] is None and status["recovered"] is None

    undone = undo_kube("embeddings", settings)
    assert (undone["undone"], undone["serving"]) == ("v2", "v1")
    assert answering(cluster) == "v1"
    assert live_apps(cluster)["embeddings"] == entry


def test_every_body_written_passes_the_crds(cluster: FakeCluster, tmp_path: Path) -> None:
    """The server refuses a body its CRD refuses (422): a rollout's writes all pass."""
    settings = cluster.settings()
    assert roll(settings, write_model(tmp_path / "model"), "v1")["outcome"] == "promoted"
    writes = [(m, code) for m, _, code in cluster.api.requests if m in ("PATCH", "PUT", "POST")]
    assert writes and {code for _, code in writes} == {200}
    invalid = httpx.patch(
        f"{cluster.api.url}/apis/ray.io/v1/namespaces/ai-ml/rayservices/ai-inference",
        json={"spec": {"serveConfigV3": "x"}},
        headers={"Authorization": "Bearer llmw-test-token",
                 "Content-Type": "application/merge-patch+json"},
    )  # fmt: skip
    assert invalid.status_code == 422
    assert "spec.serveConfigV3: additional property not allowed" in invalid.json()["message"]


def test_refusals_change_nothing(cluster: FakeCluster, tmp_path: Path) -> None:
    settings = cluster.settings()
    model = write_model(tmp_path / "model")
    before = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    with pytest.raises(RolloutRefused, match="vllm does not support drizzt") as refused:
        start_kube(
            RolloutRequest(source=str(model), app="llm", version="v1", node="drizzt"),
            settings, OPTIONS,
        )  # fmt: skip
    assert refused.value.reason == "placement"
    assert cluster.api.get("rayservices", "ai-ml", "ai-inference") == before
    assert read_history("llm", settings) == []

    cluster.api.delete(("rayservices", "ai-ml", "ai-inference"))
    with pytest.raises(RolloutRefused, match="no RayService ai-ml/ai-inference at http://127"):
        roll(settings, model, "v1")
    away = tmp_path / "away.kubeconfig"
    away.write_text(cluster.kubeconfig.read_text().replace(cluster.api.url, "http://127.0.0.1:9"))
    with pytest.raises(
        RolloutRefused, match=re.escape("cannot reach the Kubernetes API at http://127.0.0.1:9")
    ):
        roll(settings.model_copy(update={"kubeconfig": away}), model, "v1")
    assert not (tmp_path / "cluster/models/embeddings").exists()  # nothing was staged


def test_running_is_not_serving_until_the_route_answers_with_the_version(
    cluster: FakeCluster, tmp_path: Path
) -> None:
    """KubeRay's RUNNING alone does not say which config runs: the route must answer with it."""
    settings = cluster.settings(rollout_ready_timeout_s=1.5)
    model = write_model(tmp_path / "model")
    assert roll(settings, model, "v1")["outcome"] == "promoted"
    cluster.api.on_serving = None  # the route keeps answering v1 whatever the status says
    second = roll(settings, model, "v2")
    assert second["outcome"] == "rolled_back"
    assert (
        f"RUNNING, but {cluster.routes.root_url}/embeddings does not answer with v2"
        in (second["reason"])
    )
    assert (
        app_status(cluster) == "RUNNING"
        and live_apps(cluster)["embeddings"]["args"]["model_version"] == "v1"
    )


def test_conflicts_past_the_retries_roll_back(cluster: FakeCluster, tmp_path: Path) -> None:
    settings = cluster.settings(kube_conflict_retries=2)
    model = write_model(tmp_path / "model")
    assert roll(settings, model, "v1")["outcome"] == "promoted"
    cluster.api.conflicts(3)  # each of the apply's three attempts meets one
    second = roll(settings, model, "v2")
    assert second["outcome"] == "rolled_back"
    assert "409 Conflict: Operation cannot be fulfilled on rayservices" in second["reason"]
    assert cluster.api.count("PATCH", 409) == 3  # the restore had nothing to change
    assert live_apps(cluster)["embeddings"]["args"]["model_version"] == "v1"
