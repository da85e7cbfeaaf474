"""`llmw trigger model-rollout`: started like any pipeline; an image is refused before anything
is published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.engines import run_name_for
from testing.nats_server import NatsServer
from testing.recording_engine import runs_by_name
from tests.llmw.test_ingest_cli import llmw

ROLLOUT = ["-p", "model=s3://models-in/reranker-v2", "-p", "app=reranker", "-p", "version=v2"]


def test_trigger_starts_a_model_rollout(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    start_bridge(run_s=0.3)
    env = {"LLMW_NATS_URL": nats_server.url}
    args = ["trigger", "model-rollout", *ROLLOUT, "-p", "max_p95_ms=250", "--engine", "argo"]
    result = llmw(*args, "--request-id", "roll-1", "--wait", "--timeout", "60", env=env)
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines()[1:]] == [
        "accepted",
        "submitted",
        "running",
        "succeeded",
    ]
    assert runs_by_name(runs_dir) == {run_name_for("model-rollout", "roll-1"): 1}


def test_an_image_or_a_bad_target_is_refused_before_publishing(nats_server: NatsServer) -> None:
    env = {"LLMW_NATS_URL": nats_server.url}
    image = llmw("trigger", "model-rollout", *ROLLOUT, "-p", "image=evil:latest", env=env)
    assert image.returncode == 2
    assert "unknown parameter 'image'" in image.stderr
    target = llmw("trigger", "model-rollout", *ROLLOUT, "-p", "target=collection", env=env)
    assert target.returncode == 2
    assert "app 'reranker' has no collection" in target.stderr
