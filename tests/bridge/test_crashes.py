"""The bridge process SIGKILLed mid-stream and started again; SIGTERM drains it.

Submissions are counted, not surviving runs: the recording engine logs every ``submit`` call
durably (``testing.recording_engine.submissions``). The contract allows one kind of repeat: a
bridge killed after submitting and before recording the run leaves the request to a later
process, which submits again and adopts the run by its name. Any other repeat (a process
submitting one request twice, or anyone submitting a run that was recorded) is a double
submission.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path

import nats

from bridge.engines import run_name_for
from bridge.messages import PipelineStatus, RunState
from testing.bridge_harness import (
    BridgeProcess,
    collapsed,
    consumer_info,
    request,
    send,
    statuses,
    wait_for,
)
from testing.nats_server import NatsServer
from testing.recording_engine import repeats, runs_by_name, submissions

REQUESTS = 60
COPY_EVERY = 4  # these requests are published again as new stream messages (no dedup header)
FULL_LIFE = ["accepted", "submitted", "running", "succeeded"]


def finished(url: str, request_id: str) -> bool:
    return any(e.state.final for e in statuses(url, request_id))


def _epoch(status: PipelineStatus) -> float:
    return datetime.fromisoformat(status.at.replace("Z", "+00:00")).timestamp()


def recorded_at(url: str, request_ids: list[str]) -> dict[str, float]:
    """run name -> when its request's first ``submitted`` event went out (the run recorded)."""
    found = {}
    for request_id in request_ids:
        events = [e for e in statuses(url, request_id) if e.state is RunState.submitted]
        if events:
            found[run_name_for("document-ingestion", request_id)] = _epoch(events[0])
    return found


def test_a_bridge_killed_mid_stream_loses_nothing_and_submits_nothing_twice(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    # Idempotent by run name, as Argo (unique names) and the KFP lookup are: a bridge killed
    # between submitting and recording the run adopts that run on redelivery. Submissions take
    # a little while, so kills land in the middle of some.
    url = nats_server.url
    process = BridgeProcess(url, runs_dir, "--idempotent", "--run-s", "0.2", "--submit-s", "0.02")
    process.start()
    ids = [f"k-{i}" for i in range(REQUESTS)]
    try:
        wait_for(lambda: consumer_info(url) is not None, 30, "the bridge's consumer")
        for i, request_id in enumerate(ids):
            send(url, request(request_id))
            if i % COPY_EVERY == 0:
                send(url, request(request_id), msg_id=False)
            if i in (15, 40):
                some = i // 2
                wait_for(lambda: len(runs_by_name(runs_dir)) >= some, 30, "some runs")  # noqa: B023
                process.kill()
                process.start()
        wait_for(lambda: all(finished(url, r) for r in ids), 90, "every request to end")
    finally:
        process.kill()
    calls = submissions(runs_dir)
    _allowed, double = repeats(calls, process.died, recorded_at(url, ids))
    assert double == []
    assert {c.run_name for c in calls if c.succeeded} == {
        run_name_for("document-ingestion", r) for r in ids
    }
    assert set(runs_by_name(runs_dir).values()) == {1}
    for request_id in ids:
        events = statuses(url, request_id)
        # A crash may repeat an event, never skip or reorder one.
        assert collapsed(events) == FULL_LIFE, (request_id, events)


def test_a_bridge_killed_between_submitting_and_recording_leaves_the_run_to_be_adopted(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    # The first process's engine creates the run, then hangs: the bridge dies having submitted
    # and recorded nothing. The next process submits again and adopts the same run: allowed.
    url = nats_server.url
    process = BridgeProcess(url, runs_dir, "--idempotent")
    process.start("--hang-after-create-s", "60")
    try:
        wait_for(lambda: consumer_info(url) is not None, 30, "the bridge's consumer")
        send(url, request("adopt-1"))
        wait_for(lambda: len(runs_by_name(runs_dir)) == 1, 30, "the run to exist")
        process.kill()
        assert [e.state for e in statuses(url, "adopt-1")] == [RunState.accepted]
        process.start()
        wait_for(lambda: finished(url, "adopt-1"), 60, "the request to end")
    finally:
        process.kill()
    calls = submissions(runs_dir)
    assert [c.outcome for c in calls] == ["created", "adopted"]
    first, second = process.lives
    assert [c.pid for c in calls] == [first.pid, second.pid]
    allowed, double = repeats(calls, process.died, recorded_at(url, ["adopt-1"]))
    assert (len(allowed), double) == (1, [])
    assert runs_by_name(runs_dir) == {run_name_for("document-ingestion", "adopt-1"): 1}
    assert collapsed(statuses(url, "adopt-1")) == FULL_LIFE


def test_sigterm_finishes_in_flight_work_then_exits_cleanly(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    # Each submission takes 1 s and four run at once: SIGTERM arrives while the bridge holds
    # requests mid-submission and others waiting for a submit slot, and more requests come in
    # while it drains. Every request it took must reach ``submitted`` and its ack before the
    # process exits; what it did not take stays in the stream for the next bridge, and nothing
    # is left delivered and unacked.
    url = nats_server.url
    ids = [f"t-{i}" for i in range(10)]
    late = [f"late-{i}" for i in range(5)]
    process = BridgeProcess(url, runs_dir, "--submit-s", "1.0", "--run-s", "0.1")
    process.start()
    try:
        wait_for(lambda: consumer_info(url) is not None, 30, "the bridge's consumer")
        asyncio.run(_publish_all(url, ids))
        wait_for(lambda: len(statuses(url, ids[0])) > 0, 30, "the first request accepted")
        sigterm_at = time.time()
        process.send_sigterm()
        asyncio.run(_publish_all(url, late))
        assert process.wait() == 0
    finally:
        process.kill()
    everything = ids + late
    events = {request_id: statuses(url, request_id) for request_id in everything}
    taken = [r for r in everything if events[r]]
    unfinished = [r for r in taken if RunState.submitted not in {e.state for e in events[r]}]
    assert taken and unfinished == []
    submitted = [e for r in taken for e in events[r] if e.state is RunState.submitted]
    assert max(_epoch(e) for e in submitted) > sigterm_at  # work was in flight at SIGTERM
    info = consumer_info(url)
    assert info is not None
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)
    assert info.num_pending == len(everything) - len(taken)
    assert sorted(c.run_name for c in submissions(runs_dir)) == sorted(
        run_name_for("document-ingestion", r) for r in taken
    )
    # Whatever it did not take goes to the next bridge: every request gets its one run.
    process.start()
    try:
        wait_for(lambda: all(finished(url, r) for r in everything), 60, "the rest")
    finally:
        process.kill()
    runs = runs_by_name(runs_dir)
    assert set(runs.values()) == {1} and len(runs) == len(everything)
    assert all(statuses(url, r)[-1].state is RunState.succeeded for r in everything)


async def _publish_all(url: str, ids: list[str]) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for request_id in ids:
            req = request(request_id)
            await js.publish(
                f"ai.pipeline.trigger.{req.pipeline}",
                req.encode(),
                headers={"Nats-Msg-Id": request_id},
            )
    finally:
        await nc.close()
