"""The model-rollout WorkflowTemplate on argo-local against the fake cluster (the CRD-validating
API server whose controllers move the RayService's status as KubeRay does, and routes answering
as the version it runs): v1 promoted through the resource patch; v2 whose route fails its gate,
and v3 whose app goes DEPLOY_FAILED (the apply step's failureCondition), both restored to v1 by
the exit handler, with the reason in the history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.rollout import rayservice
from components.rollout.history import read_history
from components.rollout.serve_config import application_index, parse_serve_config
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.components.rollout.conftest import write_model
from workflows.local_runner import LocalRunError, run_local

NAME = "model-rollout"
pytestmark = pytest.mark.slow


def llm_version(cluster: FakeCluster) -> str | None:
    """The model version the RayService's llm entry names now."""
    document = cluster.api.get("rayservices", "ai-ml", "ai-inference")
    assert document is not None
    config = parse_serve_config(document["spec"]["serveConfigV2"])
    index = application_index(config, "llm")
    assert index is not None
    version: str | None = config["applications"][index]["args"].get("model_version")
    return version


def test_promote_and_the_exit_handler_restores(tmp_path: Path, clean_env: None) -> None:
    model = write_model(tmp_path / "model")
    with fake_cluster(tmp_path / "cluster") as cluster:
        settings = cluster.settings()
        cluster.api.seed(rayservice.render_rayservice(settings))

        def run(version: str) -> dict[str, Any]:
            params = {"model": str(model), "app": "llm", "version": version, "rounds": 1}
            return run_local(NAME, params, settings, work_dir=tmp_path / "argo")

        first = run("v1")
        assert first["report"]["outcome"] == "promoted" and first["report"]["version"] == "v1"
        assert llm_version(cluster) == "v1"
        phases = {n["name"].rpartition(".")[2]: n["phase"] for n in first["nodes"]}
        assert phases["apply"] == "Succeeded" and phases["restore"] == "Skipped"

        cluster.routes.broken.add("v2")  # loads, then answers 500: the gate fails
        with pytest.raises(LocalRunError, match=r"promote: error: gate failed: success_rate"):
            run("v2")
        assert llm_version(cluster) == "v1"

        cluster.api.outcomes["v3"] = "deploy_failed"
        with pytest.raises(LocalRunError, match=r"apply \(apply-change\): failure condition"):
            run("v3")  # the failureCondition, not the gate's wait
        assert llm_version(cluster) == "v1"

    events = [(e["event"], e["version"]) for e in read_history("llm", settings)]
    assert events == [
        ("started", "v1"), ("gate", "v1"), ("promoted", "v1"),
        ("started", "v2"), ("gate", "v2"), ("rolled_back", "v2"),
        ("started", "v3"), ("rolled_back", "v3"),
    ]  # fmt: skip
    reasons = [e["reason"] for e in read_history("llm", settings) if e["event"] == "rolled_back"]
    assert reasons[0].startswith("gate failed: success_rate")
    assert "DEPLOY_FAILED" in reasons[1]
