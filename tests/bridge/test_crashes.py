"""The bridge process SIGKILLed mid-stream and started again; SIGTERM drains it."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.messages import RunState
from testing.bridge_harness import BridgeProcess, collapsed, request, send, statuses, wait_for
from testing.nats_server import NatsServer
from testing.recording_engine import runs_by_name

REQUESTS = 60


def finished(url: str, request_id: str) -> bool:
    return any(e.state.final for e in statuses(url, request_id, quiet_s=0.05))


def test_a_bridge_killed_mid_stream_loses_nothing_and_runs_nothing_twice(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    # Idempotent by run name, as Argo (unique names) and the KFP lookup are: a bridge killed
    # between submitting and recording the run adopts that run on redelivery.
    process = BridgeProcess(nats_server.url, runs_dir, "--idempotent", "--run-s", "0.2")
    process.start()
    try:
        wait_for(lambda: _consumer_up(nats_server), 30, "the bridge's consumer")
        for i in range(REQUESTS):
            send(nats_server.url, request(f"k-{i}"))
            if i in (15, 40):
                some = i // 2
                wait_for(lambda: len(runs_by_name(runs_dir)) >= some, 30, "some runs")  # noqa: B023
                process.kill()
                process.start()
        wait_for(
            lambda: all(finished(nats_server.url, f"k-{i}") for i in range(REQUESTS)),
            90,
            "every request to end",
        )
    finally:
        process.kill()
    counts = runs_by_name(runs_dir)
    assert len(counts) == REQUESTS
    for i in range(REQUESTS):
        events = statuses(nats_server.url, f"k-{i}", quiet_s=0.05)
        # A crash may repeat an event, never skip or reorder one.
        assert collapsed(events) == ["accepted", "submitted", "running", "succeeded"], (i, events)


def test_sigterm_finishes_in_flight_work_then_exits_cleanly(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    process = BridgeProcess(nats_server.url, runs_dir, "--run-s", "0.1")
    process.start()
    try:
        wait_for(lambda: _consumer_up(nats_server), 30, "the bridge's consumer")
        for i in range(10):
            send(nats_server.url, request(f"t-{i}"))
        time.sleep(0.2)
        assert process.terminate() == 0
    finally:
        process.kill()
    # Whatever it had not acked comes back to a new bridge: every request still gets its run.
    process.start()
    try:
        wait_for(
            lambda: all(finished(nats_server.url, f"t-{i}") for i in range(10)), 60, "the rest"
        )
    finally:
        process.kill()
    assert len(runs_by_name(runs_dir)) == 10
    assert all(
        statuses(nats_server.url, f"t-{i}")[-1].state is RunState.succeeded for i in range(10)
    )


def _consumer_up(server: NatsServer) -> bool:
    import asyncio

    import nats

    async def check() -> bool:
        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().consumer_info("AI_PIPELINE", "llmw-bridge")
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(check())
