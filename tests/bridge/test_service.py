"""The bridge on a real nats-server: one run per request, status events in order."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.engines import run_name_for
from bridge.messages import RunState, trigger_subject
from components.orchestration.runs import SubmitError
from testing.bridge_harness import (
    BridgeThread,
    all_statuses,
    collapsed,
    request,
    send,
    states,
    statuses,
    wait_consumer_settled,
    wait_for,
    wait_for_state,
)
from testing.nats_server import NatsServer
from testing.recording_engine import RecordingEngine, runs_by_name, submissions

FULL_LIFE = ["accepted", "submitted", "running", "succeeded"]


def test_a_request_becomes_one_run_with_its_status_events_in_order(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge(run_s=0.3)
    send(nats_server.url, request("req-1"))
    events = wait_for_state(nats_server.url, "req-1", RunState.succeeded)
    assert states(events) == FULL_LIFE
    submitted = events[1]
    assert submitted.run_id and submitted.run_url == f"test://{submitted.run_id}"
    assert submitted.pipeline == "document-ingestion" and submitted.engine == "argo"
    assert all(e.at.endswith("Z") for e in events)
    assert [e.at for e in events] == sorted(e.at for e in events)
    assert sum(runs_by_name(runs_dir).values()) == 1
    assert bridge.metrics.sample("runs_submitted_total", engine="argo") == 1


def test_a_republished_request_makes_no_second_run(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge(run_s=0.2)
    send(nats_server.url, request("req-2"))
    wait_for_state(nats_server.url, "req-2", RunState.succeeded)
    # Published again without the dedup header: a second stream message for the same request.
    send(nats_server.url, request("req-2"), msg_id=False)
    # Counted before its status goes out: wait for the status, then count.
    wait_for(lambda: len(statuses(nats_server.url, "req-2")) > 4, 10, "the duplicate's status")
    assert bridge.metrics.sample("duplicate_requests_total") == 1
    events = statuses(nats_server.url, "req-2")
    assert states(events) == [*FULL_LIFE, "succeeded"]  # the current status, re-published
    assert runs_by_name(runs_dir) == {next(iter(runs_by_name(runs_dir))): 1}


def test_the_dedup_header_drops_a_republish_inside_the_window(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge()
    for _ in range(3):
        send(nats_server.url, request("req-3"))
    wait_for_state(nats_server.url, "req-3", RunState.succeeded)
    assert bridge.metrics.sample("requests_received_total") == 1
    assert sum(runs_by_name(runs_dir).values()) == 1


def test_transient_submit_failures_are_retried_until_one_run(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge(fail_first=3)
    send(nats_server.url, request("req-4"))
    events = wait_for_state(nats_server.url, "req-4", RunState.succeeded)
    assert states(events) == FULL_LIFE
    assert bridge.metrics.sample("messages_redelivered_total") == 3
    assert sum(runs_by_name(runs_dir).values()) == 1


def test_a_permanent_submit_failure_ends_failed_with_the_reason(
    nats_server: NatsServer, start_bridge: Any
) -> None:
    class Refusing:
        name = "argo"

        def submit(self, *args: Any) -> Any:
            raise SubmitError("submitting 'document-ingestion' failed: HTTP 403 Forbidden", 403)

        def status(self, run_id: str) -> Any:
            raise AssertionError("never submitted")

        def close(self) -> None:
            return None

    bridge = start_bridge(engines=[Refusing()])
    send(nats_server.url, request("req-5"))
    events = wait_for_state(nats_server.url, "req-5", RunState.failed)
    assert states(events) == ["accepted", "failed"]
    assert events[-1].error is not None and "HTTP 403" in events[-1].error.message
    assert bridge.metrics.sample("runs_failed_total", engine="argo") == 1


def test_a_run_that_fails_is_reported_failed(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    start_bridge(failing_runs=frozenset({run_name_for("document-ingestion", "req-6")}))
    send(nats_server.url, request("req-6"))
    events = wait_for_state(nats_server.url, "req-6", RunState.failed)
    assert states(events) == ["accepted", "submitted", "running", "failed"]
    assert events[-1].error is not None and events[-1].error.message == "step exploded"


def test_the_watcher_resumes_unfinished_runs_after_a_restart(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    first = start_bridge(run_s=2.0)
    send(nats_server.url, request("req-7"))
    wait_for_state(nats_server.url, "req-7", RunState.running)
    first.stop()
    start_bridge(run_s=2.0)
    events = wait_for_state(nats_server.url, "req-7", RunState.succeeded)
    # The new bridge re-publishes where the run stood, then follows it to the end.
    assert states(events) == ["accepted", "submitted", "running", "running", "succeeded"]
    assert sum(runs_by_name(runs_dir).values()) == 1


def test_requests_survive_a_nats_server_restart(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge()
    for i in range(20):
        send(nats_server.url, request(f"before-{i}"))
    nats_server.restart()
    wait_for(lambda: bridge.bridge.ready, 20, "the bridge to reconnect")
    for i in range(20):
        send(nats_server.url, request(f"after-{i}"))
    for i in range(20):
        wait_for_state(nats_server.url, f"before-{i}", RunState.succeeded)
        wait_for_state(nats_server.url, f"after-{i}", RunState.succeeded)
    counts = runs_by_name(runs_dir)
    assert len(counts) == 40 and set(counts.values()) == {1}


def test_an_existing_stream_with_other_settings_is_reported_not_changed(
    nats_server: NatsServer, start_bridge: Any, caplog: Any
) -> None:
    import asyncio

    import nats
    from nats.js.api import StorageType, StreamConfig

    async def make_stream() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().add_stream(
            StreamConfig(
                name="AI_PIPELINE",
                subjects=["ai.pipeline.>"],
                max_age=3600,
                storage=StorageType.MEMORY,
            )
        )
        await nc.close()

    asyncio.run(make_stream())
    with caplog.at_level("WARNING", logger="llmw.bridge"):
        start_bridge()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "max_age 3600.0 s (expected 86400 s)" in messages
    assert "storage memory (expected file)" in messages
    send(nats_server.url, request("req-8"))
    wait_for_state(nats_server.url, "req-8", RunState.succeeded)


def test_a_slow_submission_keeps_its_message_without_a_redelivery(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    import time

    from testing.bridge_harness import bridge_settings

    class Slow(RecordingEngine):
        def submit(self, *args: Any) -> Any:
            time.sleep(3.0)  # three times ack_wait
            return super().submit(*args)

    settings = bridge_settings(nats_server.url, bridge_ack_wait_s=1.0)
    bridge = start_bridge(engines=[Slow("argo", runs_dir)], settings=settings)
    send(nats_server.url, request("slow-1"))
    events = wait_for_state(nats_server.url, "slow-1", RunState.succeeded)
    assert states(events) == FULL_LIFE
    assert bridge.metrics.sample("messages_redelivered_total") == 0
    assert sum(runs_by_name(runs_dir).values()) == 1


class GatedEngine(RecordingEngine):
    """Idempotent runs; the first submission fails (HTTP 503). ``gates[n]``, when set, holds
    call ``n`` (1-based) until the bridge has received that many deliveries and is done with
    every other, so a copy of the request is handled while that submission is in progress,
    every time. Calls for one run that overlap are noted in ``overlaps``."""

    def __init__(self, runs_dir: Path, gates: dict[int, int]) -> None:
        super().__init__("argo", runs_dir, idempotent=True, fail_first=1)
        self.gates = gates
        self.bridge: BridgeThread | None = None
        self.failed = threading.Event()
        self.waited: dict[int, int] = {}  # call -> deliveries seen when it went on
        self.overlaps: list[str] = []
        self._count = 0
        self._running: set[str] = set()

    def _copy_handled(self, wanted: int) -> bool:
        assert self.bridge is not None
        metrics = self.bridge.metrics
        return (
            metrics.sample("requests_received_total") >= wanted
            and metrics.sample("requests_in_flight") <= 1
        )

    def submit(self, *args: Any) -> Any:
        run_name = args[2]
        with self._lock:
            self._count += 1
            call = self._count
            if run_name in self._running:
                self.overlaps.append(f"call {call} while another was in progress")
            self._running.add(run_name)
        try:
            if call in self.gates:
                wanted = self.gates[call]
                wait_for(lambda: self._copy_handled(wanted), 30, f"delivery {wanted} handled")
                self.waited[call] = wanted
            return super().submit(*args)
        except SubmitError:
            self.failed.set()
            raise
        finally:
            with self._lock:
                self._running.discard(run_name)


@pytest.mark.parametrize(
    ("case", "gates"),
    [
        # The copy is delivered while the first submission (which fails) is in progress.
        ("during the failing submission", {1: 2}),
        # After the failure, one copy submits; the other (the retry or the copy, whichever
        # comes second) is delivered while that submission is in progress.
        ("during the retry", {2: 3}),
    ],
)
def test_copies_racing_a_failed_first_submission_lose_nothing_and_run_once(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path, case: str, gates: dict[int, int]
) -> None:
    # Only one copy may submit successfully, and no copy may be acked before the claim holds a
    # run (an ack of the retrying copy while the other was being handled used to strand the
    # request, claimed and never run): the copy that finds another in progress is left for
    # later and then found a duplicate.
    engine = GatedEngine(runs_dir, gates)
    engine.bridge = bridge = start_bridge(engines=[engine])
    req = request("race-1")
    send(nats_server.url, req)
    if 1 not in gates:
        assert engine.failed.wait(30)  # the copy comes after the failure
    send(nats_server.url, req, msg_id=False)  # a second stream message: not deduplicated
    events = wait_for_state(nats_server.url, "race-1", RunState.succeeded)
    assert engine.waited == gates, case  # the race happened
    wait_consumer_settled(nats_server.url)  # the copy left for later was handled too
    assert engine.overlaps == []
    assert collapsed(events) == FULL_LIFE
    assert [c.outcome for c in submissions(runs_dir)] == ["failed", "created"]
    assert bridge.metrics.sample("duplicate_requests_total") == 1
    assert runs_by_name(runs_dir) == {run_name_for(req.pipeline, req.request_id): 1}


def test_a_burst_of_requests_on_an_engine_that_never_blocks_all_run_once_in_order(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    # Submissions and status reads on the event loop, and more runs ending in one watcher pass
    # than it checks at once (bridge.watcher.WATCH_SLICE).
    import asyncio

    import nats

    from bridge.watcher import WATCH_SLICE

    class InlineEngine(RecordingEngine):
        blocking = False

    count = 3 * WATCH_SLICE + 5

    async def publish_all() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        for i in range(count):
            req = request(f"burst-{i}")
            headers = {"Nats-Msg-Id": req.request_id}
            await js.publish(trigger_subject(req.pipeline), req.encode(), headers=headers)
        await nc.close()

    start_bridge([InlineEngine("argo", runs_dir, idempotent=True)])
    asyncio.run(publish_all())
    events: dict[str, list[str]] = {}

    def all_ended() -> bool:
        events.clear()
        for status in all_statuses(nats_server.url):
            events.setdefault(status.request_id, []).append(status.state.value)
        ended = [e for e in events.values() if e and e[-1] == "succeeded"]
        return len(ended) == count

    wait_for(all_ended, 60, f"{count} runs succeeded")
    assert all(states == FULL_LIFE for states in events.values()), events
    counts = runs_by_name(runs_dir)
    assert len(counts) == count and set(counts.values()) == {1}
