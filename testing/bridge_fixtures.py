"""pytest fixtures for a bridge: a real nats-server per test and bridges on their own event loops
in threads (registered for every test by tests/conftest.py; testing.bridge_harness drives them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.engines import Engine, EngineSet
from components.settings import Settings
from testing.bridge_harness import BridgeThread, bridge_settings
from testing.nats_server import NatsServer
from testing.recording_engine import RecordingEngine


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def start_bridge(nats_server: NatsServer, runs_dir: Path) -> Iterator[Callable[..., BridgeThread]]:
    """Start a bridge on the recording engine (for every engine name) or on given engines."""
    started: list[BridgeThread] = []

    def start(
        engines: list[Engine] | None = None, settings: Settings | None = None, **engine_args: Any
    ) -> BridgeThread:
        settings = settings or bridge_settings(nats_server.url)

        def factory(name: str, _settings: Settings) -> Engine:
            return RecordingEngine(name, runs_dir, **engine_args)

        thread = BridgeThread(settings, EngineSet(settings, factory, preset=engines or []))
        started.append(thread.start())
        return thread

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()
