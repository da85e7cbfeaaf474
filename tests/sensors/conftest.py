"""Sensor fixtures: the sample events, the documents rendered with the shipped defaults, and a
stand-in ``document-removal`` job for the sensor that waits for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

EVENTS = Path(__file__).parent / "events"


def sample(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def sample_json(name: str) -> Any:
    return json.loads(sample(name))


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.fixture
def docs(default_settings: Any, schemas_dir: Path) -> Any:
    """Every event document, validated, from the shipped defaults."""
    from sensors.render import documents

    return documents(default_settings, schemas_dir)


def simulated(found: Any, sensor: str, raw: bytes) -> Any:
    from sensors.simulate import simulate

    document = found.sensors[sensor]
    source = found.event_sources[document["spec"]["dependencies"][0]["eventSourceName"]]
    return simulate(document, source, raw)


class RemovalParams(BaseModel):
    """What the document-removal job will take (its owner registers the real one)."""

    model_config = ConfigDict(extra="forbid")

    uris: list[str]
    collection: str = "documents"
    milvus_uri: str | None = None


@pytest.fixture
def removal_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A ``document-removal`` job in the registry, as its owner will add it."""
    from components.registry import JOBS, JobSpec

    if "document-removal" in JOBS:  # registered for real: use it
        yield
        return
    spec = JobSpec(
        name="document-removal",
        params_model=RemovalParams,
        description="Remove documents' rows from the collection by source URI.",
    )
    monkeypatch.setitem(JOBS, "document-removal", spec)
    yield
