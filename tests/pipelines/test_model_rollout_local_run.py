"""The model-rollout pipeline on kfp.local against a real ray-local (Ray Serve on 127.0.0.1), with
the packaged MiniLM as the embeddings app: v1 promoted; a broken v2 (random weights) fails its
gate, the run fails and its exit task restores v1. The artifacts a Kubeflow UI shows: the Model
(version, sha256, URI), the gate's Metrics, Markdown and HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.rollout.history import read_history
from components.rollout.ray_local import VERSION_HEADER, RayLocal
from components.rollout.store import open_store
from pipelines.local_run import LocalRunError, run_local
from testing.ray_local import minilm_copy, running_ray_local

NAME = "model-rollout"
pytestmark = pytest.mark.slow


def served_version(ray: RayLocal) -> str:
    response = httpx.post(
        f"{ray.http_url}/embeddings/v1/embeddings", json={"input": "hello"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.headers[VERSION_HEADER]


def task_output(run: Path, task: str) -> dict[str, Any]:
    output: dict[str, Any] = json.loads((run / task / "executor_output.json").read_text())
    return output


def test_promote_then_a_failed_gate_rolls_back(tmp_path: Path, clean_env: None) -> None:
    good = minilm_copy(tmp_path / "good")
    broken = minilm_copy(tmp_path / "broken", random_weights=True)
    root = tmp_path / "kfp"
    with running_ray_local() as (settings, ray):
        params = {"model": str(good), "app": "embeddings", "engine": "ray-local", "rounds": 1}
        report = run_local(NAME, {**params, "version": "v1"}, settings, pipeline_root=root)
        assert report["outcome"] == "promoted" and report["version"] == "v1", report
        assert "previous_version" not in report and report["gate_passed"] is True  # null: left out
        assert served_version(ray) == "v1"

        with pytest.raises(LocalRunError) as failed:
            run_local(NAME, {**params, "model": str(broken), "version": "v2"}, settings,
                      pipeline_root=root)  # fmt: skip
        assert "rollout-promote" in str(failed.value) and "gate failed: quality" in str(
            failed.value
        )
        assert served_version(ray) == "v1"  # the exit task restored it
        events = [(e["event"], e["version"]) for e in read_history("embeddings", settings)]
        assert events == [
            ("started", "v1"), ("gate", "v1"), ("promoted", "v1"),
            ("started", "v2"), ("gate", "v2"), ("rolled_back", "v2"),
        ]  # fmt: skip
        rolled_back = read_history("embeddings", settings)[-1]
        assert rolled_back["serving"] == "v1" and "gate failed" in rolled_back["reason"]
        manifest = open_store(settings).read_manifest("embeddings", "v1")
    assert manifest is not None

    first, second = sorted(root.glob("model-rollout-*"))
    staged = task_output(first, "rollout-stage")["artifacts"]["staged_model"]["artifacts"][0]
    assert staged["metadata"]["version"] == "v1"
    assert staged["metadata"]["sha256"] == manifest.digest
    assert staged["metadata"]["uri"].rstrip("/").endswith("/embeddings/v1")
    metrics = task_output(first, "rollout-gate")["artifacts"]["metrics"]["artifacts"][0]
    assert metrics["metadata"]["passed"] == 1.0 and metrics["metadata"]["new_quality"] >= 0.75
    # The failed gate's documents are written all the same: the decision and its reasons.
    page = (second / "rollout-gate" / "report").read_text()
    assert "<svg" in page and "FAILED" in page
    summary = (second / "rollout-gate" / "summary").read_text()
    assert "| quality |" in summary or "quality" in summary
    failed_metrics = task_output(second, "rollout-gate")["artifacts"]["metrics"]["artifacts"][0]
    assert failed_metrics["metadata"]["passed"] == 0.0
