"""Sensor fixtures: the sample events, the documents rendered with the shipped defaults, and a
stand-in ``document-removal`` job for the sensor that waits for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

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


@pytest.fixture
def without_removal_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry as it was before ``document-removal``: its sensor must be skipped."""
    from components.registry import JOBS

    monkeypatch.delitem(JOBS, "document-removal")
