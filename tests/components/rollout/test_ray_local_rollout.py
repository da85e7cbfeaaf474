"""The rollout rehearsal on a real ray-local (Ray Serve on 127.0.0.1), with the packaged MiniLM:
deploy v1, roll out v2 (gate, promote), a broken v3 (random weights: the gate fails, v2 serves
again), a v4 that cannot load (DEPLOY_FAILED: rolled back), undo, history, status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.rollout.gate import GateThresholds
from components.rollout.history import read_history
from components.rollout.local_rollout import (
    GateOptions,
    start_local,
    status_local,
    undo_local,
)
from components.rollout.plan import RolloutRequest
from components.rollout.ray_local import VERSION_HEADER, RayLocal
from components.settings import Settings
from testing.ray_local import minilm_copy, running_ray_local

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray() -> Iterator[tuple[Settings, RayLocal]]:
    with running_ray_local() as head:
        yield head


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    good = minilm_copy(root / "good")
    broken = minilm_copy(root / "broken", random_weights=True)
    unloadable = root / "unloadable"
    unloadable.mkdir()
    (unloadable / "model.safetensors").write_bytes(b"not a model" * 100)
    return {"good": good, "broken": broken, "unloadable": unloadable}


def roll(settings: Settings, source: Path, version: str) -> dict[str, Any]:
    request = RolloutRequest(source=str(source), app="embeddings", version=version)
    options = GateOptions(GateThresholds(min_success_rate=1.0, max_quality_drop=0.1), rounds=1)
    return start_local(request, settings, options)


def served_version(ray: RayLocal) -> str | None:
    response = httpx.post(
        f"{ray.http_url}/embeddings/v1/embeddings", json={"input": "hello"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["data"][0]["embedding"]) == 384
    return response.headers[VERSION_HEADER]


def test_rehearsal(ray: tuple[Settings, RayLocal], models: dict[str, Path]) -> None:
    settings, head = ray
    first = roll(settings, models["good"], "v1")
    assert first["outcome"] == "promoted", first
    assert first["previous_version"] is None and "gate" in first
    assert served_version(head) == "v1"

    second = roll(settings, models["good"], "v2")
    assert second["outcome"] == "promoted", second
    assert second["previous_version"] == "v1"
    quality = next(r for r in second["gate"]["rows"] if r["metric"] == "quality")
    assert quality["old"] >= 0.75 and quality["new"] >= 0.75
    assert served_version(head) == "v2"

    third = roll(settings, models["broken"], "v3")
    assert third["outcome"] == "rolled_back", third
    assert "gate failed: quality" in third["reason"]
    assert third["gate"]["passed"] is False and third["gate"]["rows"]
    assert served_version(head) == "v2"
    assert head.status()["apps"]["embeddings"] == {
        **head.status()["apps"]["embeddings"],
        "status": "RUNNING",
        "version": "v2",
    }

    fourth = roll(settings, models["unloadable"], "v4")
    assert fourth["outcome"] == "rolled_back", fourth
    assert "DEPLOY_FAILED" in fourth["reason"] and "gate" not in fourth
    assert served_version(head) == "v2"

    events = read_history("embeddings", settings)
    assert [(e["event"], e["version"]) for e in events if e["event"] != "gate"] == [
        ("started", "v1"), ("promoted", "v1"),
        ("started", "v2"), ("promoted", "v2"),
        ("started", "v3"), ("rolled_back", "v3"),
        ("started", "v4"), ("rolled_back", "v4"),
    ]  # fmt: skip
    assert [e["version"] for e in events if e["event"] == "gate"] == ["v1", "v2", "v3"]
    status = status_local("embeddings", settings)
    assert (status["current_version"], status["previous_version"]) == ("v2", "v1")

    undone = undo_local("embeddings", settings)
    assert (undone["undone"], undone["serving"]) == ("v2", "v1")
    assert served_version(head) == "v1"
