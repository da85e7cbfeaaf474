"""The bridge path end to end on a real nats-server and a real bridge: a sample event, simulated,
published as Argo Events' NATS trigger publishes it (JSON, no headers), becomes one run with its
status events; a redelivered event makes no second run; a refused request is dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from bridge.engines import EngineSet
from bridge.messages import RunState
from components.settings import Settings
from llmw.events_commands import publish_request
from testing.bridge_harness import (
    BridgeThread,
    bridge_settings,
    dead_letters,
    states,
    statuses,
    wait_for,
    wait_for_state,
)
from testing.nats_server import NatsServer
from testing.recording_engine import RecordingEngine, runs_by_name
from tests.sensors.conftest import encoded, sample, simulated

REPO = Path(__file__).resolve().parents[2]
FULL_LIFE = ["accepted", "submitted", "running", "succeeded"]


@pytest.fixture
def bridge(nats_server: NatsServer, runs_dir: Path) -> Iterator[BridgeThread]:
    settings = bridge_settings(nats_server.url)

    def factory(name: str, _settings: Settings) -> RecordingEngine:
        return RecordingEngine(name, runs_dir, run_s=0.2)

    thread = BridgeThread(settings, EngineSet(settings, factory)).start()
    yield thread
    thread.stop()


def publish(url: str, creates: dict[str, Any], wait: bool = False) -> str | None:
    settings = bridge_settings(url)
    return asyncio.run(
        publish_request(settings, creates["subject"], creates["request"], wait, 30.0, True)
    )


def simulated_request(docs: Any, sensor: str, raw: bytes) -> dict[str, Any]:
    result = simulated(docs, sensor, raw)
    (outcome,) = result.triggers
    assert outcome.fires and outcome.creates is not None
    return outcome.creates


async def _last_message(url: str, subject: str) -> Any:
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().get_last_msg("AI_PIPELINE", subject)
    finally:
        await nc.close()


def test_published_exactly_as_argo_events_publishes(
    docs: Any, nats_server: NatsServer, bridge: BridgeThread
) -> None:
    creates = simulated_request(docs, "document-created", sample("minio-put.json"))
    publish(nats_server.url, creates)
    stored = asyncio.run(_last_message(nats_server.url, creates["subject"]))
    assert stored.data == json.dumps(creates["request"], separators=(",", ":")).encode()
    assert stored.data.startswith(b'{"request_id":"document-created-')
    assert not stored.headers  # the NATS trigger sets no Nats-Msg-Id


def test_an_upload_becomes_one_run_with_status_events(
    docs: Any, nats_server: NatsServer, bridge: BridgeThread, runs_dir: Path
) -> None:
    creates = simulated_request(docs, "document-created", sample("minio-put.json"))
    request_id = creates["request"]["request_id"]
    assert publish(nats_server.url, creates, wait=True) == "succeeded"
    events = wait_for_state(nats_server.url, request_id, RunState.succeeded)
    assert states(events) == FULL_LIFE
    assert events[0].pipeline == "document-ingestion"
    assert sum(runs_by_name(runs_dir).values()) == 1
    (run,) = [json.loads(p.read_text()) for p in runs_dir.glob("*.json")]
    assert run["params"] == creates["request"]["parameters"]


def test_a_redelivered_event_makes_no_second_run(
    docs: Any, nats_server: NatsServer, bridge: BridgeThread, runs_dir: Path
) -> None:
    creates = simulated_request(docs, "nightly-reingest", sample("calendar-cloudevent.json"))
    request_id = creates["request"]["request_id"]
    publish(nats_server.url, creates)
    wait_for_state(nats_server.url, request_id, RunState.succeeded)
    # The sensor's retry or the EventBus's redelivery: the same event, the same request.
    again = simulated_request(docs, "nightly-reingest", sample("calendar-cloudevent.json"))
    assert again == creates
    publish(nats_server.url, again)
    wait_for(lambda: len(statuses(nats_server.url, request_id)) > 4, 20, "the duplicate's status")
    assert states(statuses(nats_server.url, request_id)) == [*FULL_LIFE, "succeeded"]
    assert sum(runs_by_name(runs_dir).values()) == 1
    assert bridge.metrics.sample("duplicate_requests_total") == 1


def test_a_request_the_pipeline_refuses_is_rejected_and_dead_lettered(
    docs: Any, nats_server: NatsServer, bridge: BridgeThread, runs_dir: Path
) -> None:
    body = encoded({"source": "s3://documents/docs/", "colection": "typo"})
    creates = simulated_request(docs, "ci-document-ingestion", body)
    request_id = creates["request"]["request_id"]
    assert publish(nats_server.url, creates, wait=True) == "rejected"
    (status,) = statuses(nats_server.url, request_id)
    assert status.state is RunState.rejected and status.error is not None
    assert status.error.code == "invalid_parameters"
    assert "unknown parameter 'colection'" in status.error.message
    ((data, headers),) = dead_letters(nats_server.url)
    assert headers["Llmw-Reject-Code"] == "invalid_parameters"
    assert json.loads(data) == creates["request"]
    assert runs_by_name(runs_dir) == {}


def test_llmw_events_simulate_publish_wait(
    nats_server: NatsServer, bridge: BridgeThread, runs_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    env["LLMW_NATS_URL"] = nats_server.url
    event = str(Path(__file__).parent / "events" / "minio-multipart-record.json")
    command = ["events", "simulate", "document-created", event, "--publish", "--wait"]
    done = subprocess.run(
        [sys.executable, "-m", "llmw.cli", *command, "--timeout", "30"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published on ai.pipeline.trigger.document-ingestion" in done.stdout
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"v"')]
    assert [line["state"] for line in lines] == FULL_LIFE
    assert sum(runs_by_name(runs_dir).values()) == 1
