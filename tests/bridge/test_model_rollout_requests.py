"""A model-rollout request through the bridge: the real job starts on kfp-local (it stages the
model, then its render step refuses, ray-local not running, and the run fails saying so, with
nothing applied), and a request that sets an image is rejected before any run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.engines import LocalEngine, run_name_for
from bridge.messages import PipelineRequest, RunState
from components.rollout.ray_local import free_port
from testing.bridge_harness import packb, publish, send, states, wait_for_state
from testing.nats_server import NatsServer
from tests.components.rollout.conftest import write_model

PIPELINE = "model-rollout"


@pytest.fixture
def rollout_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Path:
    """Local runs under ``tmp_path``; a model store there; no ray-local where settings look."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMW_MODEL_STORE_URI", str(tmp_path / "store"))
    monkeypatch.setenv("LLMW_RAY_LOCAL_DIR", str(tmp_path / "ray"))
    monkeypatch.setenv("LLMW_RAY_LOCAL_DASHBOARD_PORT", str(free_port()))
    return tmp_path


@pytest.mark.slow
def test_the_bridge_starts_the_real_job_and_reports_its_refusal(
    nats_server: NatsServer, start_bridge: Any, rollout_env: Path
) -> None:
    model = write_model(rollout_env / "model")
    start_bridge(engines=[LocalEngine("kfp-local", workers=1)])
    parameters = {"model": str(model), "app": "reranker", "version": "v1", "engine": "ray-local"}
    send(
        nats_server.url,
        PipelineRequest(
            request_id="rollout-1", pipeline=PIPELINE, engine="kfp-local", parameters=parameters
        ),
    )
    events = wait_for_state(nats_server.url, "rollout-1", RunState.failed, timeout_s=300)
    assert states(events) == ["accepted", "submitted", "running", "failed"]
    assert events[1].run_id == run_name_for(PIPELINE, "rollout-1")
    error = events[-1].error
    assert error is not None and "rollout-render" in error.message
    assert "ray-local is not running" in error.message
    # The stage step ran (the version is in the store); nothing was started, so no history.
    assert (rollout_env / "store" / "reranker" / "v1").is_dir()
    assert not (rollout_env / "store" / "reranker" / "history.jsonl").exists()


def test_a_request_that_sets_an_image_is_rejected(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    start_bridge()
    body = {
        "v": 1,
        "request_id": "rollout-image",
        "pipeline": PIPELINE,
        "parameters": {"model": "/m", "app": "llm", "version": "v1", "image": "evil:latest"},
    }
    publish(nats_server.url, packb(body), PIPELINE, msg_id="rollout-image")
    events = wait_for_state(nats_server.url, "rollout-image", RunState.rejected)
    assert states(events) == ["rejected"]
    assert events[0].error is not None and events[0].error.code == "forbidden_field"
    assert "parameters.image" in events[0].error.message
    assert not runs_dir.exists() or not list(runs_dir.glob("*.json"))
