"""The message handler on its own, without a fetch loop or a Bridge: real JetStream messages,
fetched once from the bridge's consumer on a real nats-server, handed to
``MessageHandler.handle`` one by one; then what it published, saved and acked is read back."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bridge.claims import ClaimRecord, ClaimStore
from bridge.context import BridgeContext
from bridge.engines import Engine, EngineSet, run_name_for
from bridge.handler import MessageHandler
from bridge.messages import TRIGGER_PREFIX, PipelineRequest, RunState, trigger_subject
from bridge.metrics import BridgeMetrics
from bridge.topology import consumer_config, ensure_stream
from components.orchestration.runs import SubmitError
from testing.bridge_harness import (
    bridge_settings,
    consumer_info,
    dead_letters,
    packb,
    request,
    states,
    statuses,
)
from testing.nats_server import NatsServer
from testing.recording_engine import RecordingEngine, runs_by_name, submissions

T = TypeVar("T")


@dataclass
class Rig:
    """A handler wired to a real stream, claims bucket and consumer; ``followed`` is what it
    handed to the watcher."""

    js: JetStreamContext
    sub: JetStreamContext.PullSubscription
    claims: ClaimStore
    handler: MessageHandler
    metrics: BridgeMetrics
    followed: list[tuple[ClaimRecord, int]] = field(default_factory=list)

    async def publish(self, req: PipelineRequest, msg_id: bool = True) -> None:
        headers = {"Nats-Msg-Id": req.request_id} if msg_id else None
        await self.js.publish(trigger_subject(req.pipeline), req.encode(), headers=headers)

    async def fetch(self, count: int, timeout_s: float = 10.0) -> list[Msg]:
        """Exactly ``count`` deliveries (several fetches if need be)."""
        found: list[Msg] = []
        while len(found) < count:
            found += await self.sub.fetch(count - len(found), timeout=timeout_s)
        return found


def with_handler(url: str, engine: Engine, scenario: Callable[[Rig], Awaitable[T]]) -> T:
    """Run ``scenario`` with a handler on ``engine``; its result."""

    async def main() -> T:
        settings = bridge_settings(url)
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await ensure_stream(js, settings.bridge_stream)
            claims = await ClaimStore.open(js, settings.bridge_kv_bucket)
            sub = await js.pull_subscribe(
                TRIGGER_PREFIX + ">",
                durable=settings.bridge_consumer,
                stream=settings.bridge_stream,
                config=consumer_config(settings),
            )
            metrics = BridgeMetrics()
            engines = EngineSet(settings, preset=[engine])
            followed: list[tuple[ClaimRecord, int]] = []

            def follow(record: ClaimRecord, revision: int) -> None:
                followed.append((record, revision))

            ctx = BridgeContext(settings, js, claims, engines, metrics)
            handler = MessageHandler(ctx, follow)
            return await scenario(Rig(js, sub, claims, handler, metrics, followed))
        finally:
            await nc.close()

    return asyncio.run(main())


def unacked(url: str) -> int:
    info = consumer_info(url)
    assert info is not None
    return (info.num_ack_pending or 0) + (info.num_pending or 0)


def test_a_request_is_claimed_submitted_recorded_acked_and_followed(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    async def scenario(rig: Rig) -> Any:
        await rig.publish(request("h-1"))
        (msg,) = await rig.fetch(1)
        await rig.handler.handle(msg)
        return await rig.claims.get("h-1"), rig.followed, rig.metrics

    found, followed, metrics = with_handler(
        nats_server.url, RecordingEngine("argo", runs_dir), scenario
    )
    assert found is not None
    record, revision = found
    assert record.state is RunState.submitted and record.run_id and record.attempts == 1
    assert followed == [(record, revision)]
    assert states(statuses(nats_server.url, "h-1")) == ["accepted", "submitted"]
    assert [c.outcome for c in submissions(runs_dir)] == ["created"]
    assert unacked(nats_server.url) == 0
    assert metrics.sample("runs_submitted_total", engine="argo") == 1


def test_a_second_copy_republishes_where_the_request_stands_and_submits_nothing(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    async def scenario(rig: Rig) -> Any:
        await rig.publish(request("h-2"))
        await rig.publish(request("h-2"), msg_id=False)  # a new stream message
        for msg in await rig.fetch(2):
            await rig.handler.handle(msg)
        return rig.followed, rig.metrics

    followed, metrics = with_handler(nats_server.url, RecordingEngine("argo", runs_dir), scenario)
    assert states(statuses(nats_server.url, "h-2")) == ["accepted", "submitted", "submitted"]
    assert len(followed) == 1 and metrics.sample("duplicate_requests_total") == 1
    assert [c.outcome for c in submissions(runs_dir)] == ["created"]
    assert unacked(nats_server.url) == 0


def test_a_copy_arriving_while_another_is_handled_is_left_for_later(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    class Held(RecordingEngine):
        def __init__(self) -> None:
            super().__init__("argo", runs_dir)
            self.entered = asyncio.Event()
            self.release = asyncio.Event()
            self.loop: asyncio.AbstractEventLoop | None = None

        def submit(self, *args: Any) -> Any:  # in a worker thread
            assert self.loop is not None
            self.loop.call_soon_threadsafe(self.entered.set)
            asyncio.run_coroutine_threadsafe(self.release.wait(), self.loop).result(30)
            return super().submit(*args)

    engine = Held()

    async def scenario(rig: Rig) -> Any:
        engine.loop = asyncio.get_running_loop()
        await rig.publish(request("h-3"))
        await rig.publish(request("h-3"), msg_id=False)
        first, copy = await rig.fetch(2)
        handling = asyncio.create_task(rig.handler.handle(first))
        await asyncio.wait_for(engine.entered.wait(), 30)
        await rig.handler.handle(copy)  # returns at once: nak, to look again later
        engine.release.set()
        await handling
        (again,) = await rig.fetch(1)  # the copy, redelivered after its nak delay
        assert again.metadata.sequence.stream == copy.metadata.sequence.stream
        assert again.metadata.num_delivered == 2
        await rig.handler.handle(again)
        return rig.metrics

    metrics = with_handler(nats_server.url, engine, scenario)
    assert (
        metrics.sample("duplicate_requests_total") == 1
        and metrics.sample("messages_redelivered_total") == 1
    )
    assert [c.outcome for c in submissions(runs_dir)] == ["created"]
    assert unacked(nats_server.url) == 0


def test_a_transient_failure_counts_the_attempt_and_comes_back_after_a_delay(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    async def scenario(rig: Rig) -> Any:
        await rig.publish(request("h-4"))
        (msg,) = await rig.fetch(1)
        await rig.handler.handle(msg)
        failed = await rig.claims.get("h-4")
        (again,) = await rig.fetch(1)  # redelivered after bridge_retry_base_s
        assert again.metadata.num_delivered == 2
        await rig.handler.handle(again)
        return failed, await rig.claims.get("h-4"), rig.metrics

    engine = RecordingEngine("argo", runs_dir, fail_first=1)
    failed, done, metrics = with_handler(nats_server.url, engine, scenario)
    assert failed is not None and failed[0].state is RunState.accepted
    assert failed[0].attempts == 1 and failed[0].run_id is None
    assert done is not None and done[0].state is RunState.submitted and done[0].attempts == 2
    assert states(statuses(nats_server.url, "h-4")) == ["accepted", "submitted"]
    assert [c.outcome for c in submissions(runs_dir)] == ["failed", "created"]
    assert metrics.sample("messages_redelivered_total") == 1
    assert unacked(nats_server.url) == 0


def test_a_permanent_failure_ends_failed_and_is_never_delivered_again(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    class Refusing(RecordingEngine):
        def submit(self, *args: Any) -> Any:
            raise SubmitError("HTTP 403 Forbidden", 403)

    async def scenario(rig: Rig) -> Any:
        await rig.publish(request("h-5"))
        (msg,) = await rig.fetch(1)
        await rig.handler.handle(msg)
        return rig.followed

    followed = with_handler(nats_server.url, Refusing("argo", runs_dir), scenario)
    events = statuses(nats_server.url, "h-5")
    assert states(events) == ["accepted", "failed"] and followed == []
    assert events[-1].error is not None and events[-1].error.code == "submit_failed"
    assert "HTTP 403" in events[-1].error.message
    assert unacked(nats_server.url) == 0  # terminated: nothing waits for an ack
    assert runs_by_name(runs_dir) == {}


def test_a_rejected_message_is_dead_lettered_with_its_reason_and_terminated(
    nats_server: NatsServer, runs_dir: Path
) -> None:
    body = {"v": 1, "request_id": "h-6", "pipeline": "document-ingestion", "image": "evil"}

    async def scenario(rig: Rig) -> Any:
        subject = trigger_subject("document-ingestion")
        ack = await rig.js.publish(subject, packb(body), headers={"Nats-Msg-Id": "h-6"})
        (msg,) = await rig.fetch(1)
        await rig.handler.handle(msg)
        return ack.seq, rig.metrics

    seq, metrics = with_handler(nats_server.url, RecordingEngine("argo", runs_dir), scenario)
    ((letter, headers),) = dead_letters(nats_server.url)
    assert letter == packb(body)
    assert headers["Llmw-Reject-Code"] == "forbidden_field"
    assert headers["Llmw-Stream-Seq"] == str(seq)
    assert headers["Llmw-Original-Subject"] == trigger_subject("document-ingestion")
    events = statuses(nats_server.url, "h-6")
    assert states(events) == ["rejected"]
    assert events[0].error is not None and "image" in events[0].error.message
    assert metrics.sample("requests_rejected_total", reason="forbidden_field") == 1
    assert unacked(nats_server.url) == 0
    assert run_name_for("document-ingestion", "h-6") not in runs_by_name(runs_dir)
