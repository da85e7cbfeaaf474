"""The bridge: a durable pull consumer on AI_PIPELINE turning requests into exactly one run each.

Per message: decode and validate (else reject: status, dead letter, terminate) -> claim the
``request_id`` in KV (else it is a duplicate: re-publish its status, ack) -> ``accepted`` ->
submit off the event loop (transient failure: nak with a growing delay; permanent: ``failed``)
-> ``submitted`` -> ack. The watcher takes it from there. A record is saved before its event is
published, and whoever picks a request up again re-publishes where it stands: a crash can repeat
an event, never lose or reorder one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError, ServiceUnavailableError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from bridge.claims import ClaimRecord, ClaimStore
from bridge.engines import EngineSet, blocks, call_engine, is_transient, run_name_for
from bridge.messages import (
    REQUEST_ID_PATTERN,
    TRIGGER_PREFIX,
    PipelineRequest,
    Rejection,
    RunState,
    StatusError,
    dead_letter_subject,
    decode_request,
    status_subject,
)
from bridge.metrics import BridgeMetrics
from bridge.watcher import Watcher
from components.registry import get_job
from components.settings import Settings

log = logging.getLogger("llmw.bridge")

STREAM_SUBJECTS = ["ai.pipeline.>"]
STREAM_MAX_AGE_S = 24 * 3600.0
STREAM_DUPLICATE_WINDOW_S = 120.0
FETCH_EXPIRES_S = 2.0
FETCH_HEARTBEAT_S = 0.5
PERSIST_TIMEOUT_S = 300.0
# What a NATS outage raises at a publish, a KV write or an ack.
NATS_TRANSIENT = (
    ConnectionClosedError,
    NatsTimeoutError,
    NoRespondersError,
    ServiceUnavailableError,
    TimeoutError,
    OSError,
)


class Bridge:
    """One bridge process: connection, stream, consumer, handlers and the watcher."""

    def __init__(
        self,
        settings: Settings,
        engines: EngineSet | None = None,
        metrics: BridgeMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.engines = engines or EngineSet(settings)
        self.metrics = metrics or BridgeMetrics()
        self.nc: NATS | None = None
        self.js: JetStreamContext | None = None
        self.claims: ClaimStore | None = None
        self.watcher: Watcher | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._consumer_stale = False
        self._active: dict[str, int] = {}  # request_id -> stream sequence being handled
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.bridge_max_in_flight)
        self._submit_slots = asyncio.Semaphore(settings.bridge_workers)

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected to NATS with the consumer bound."""
        return (
            self.nc is not None
            and self.nc.is_connected
            and self._sub is not None
            and not self._consumer_stale
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then stop fetching, finish in-flight work and drain."""
        await self._start(stop)
        if stop.is_set() or self.watcher is None:
            await self._close()
            return
        try:
            await self._fetch_loop(stop)
        finally:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.watcher.stop()
            await self._close()

    async def _start(self, stop: asyncio.Event) -> None:
        """Connect, then set up stream, claims, consumer and watcher; all of it is retried
        until it succeeds, so NATS going away in the middle of a start is only a delay."""
        while not stop.is_set():
            try:
                if self.nc is None:
                    await self._connect()
                assert self.js is not None
                await self._ensure_stream()
                self.claims = await ClaimStore.open(self.js, self.settings.bridge_kv_bucket)
                await self._bind_consumer()
                watcher = Watcher(self.settings, self.js, self.claims, self.engines, self.metrics)
                await watcher.start()
                self.watcher = watcher
                return
            except (*NATS_TRANSIENT, NoServersError) as exc:
                log.warning("cannot start yet (%s); trying again", exc or type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    async def _connect(self) -> None:
        from bridge.connection import connect_options, redact_url

        self.nc = await nats.connect(
            **connect_options(self.settings),
            # Every subject the bridge publishes on is built from a request id that matched
            # REQUEST_ID_PATTERN or from a fixed name; re-checking each one costs CPU per write.
            skip_subject_validation=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        log.info("connected to NATS at %s", redact_url(self.settings.nats_url))
        self.js = self.nc.jetstream()

    async def _close(self) -> None:
        # Every publish and ack was awaited already; what is left is to leave the consumer
        # (pending messages go back to the stream) and flush before closing.
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.nc.flush(), 5)
            await self.nc.close()
        self.engines.close()

    async def _on_error(self, exc: Exception) -> None:
        log.warning("NATS: %s", exc)

    async def _on_disconnected(self) -> None:
        log.warning("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        log.info("reconnected to NATS; checking the consumer again")
        self._consumer_stale = True

    # --- stream and consumer --------------------------------------------------------------------

    async def _ensure_stream(self) -> None:
        """Create AI_PIPELINE when missing; when it differs, say how and leave it as it is."""
        assert self.js is not None
        name = self.settings.bridge_stream
        try:
            info = await self.js.stream_info(name)
        except NotFoundError:
            await self.js.add_stream(stream_config(name))
            log.info("created stream %s", name)
            return
        for difference in stream_differences(info.config):
            log.warning("stream %s differs from what the bridge expects: %s", name, difference)

    async def _bind_consumer(self) -> None:
        """Create or update the durable pull consumer and subscribe to it."""
        assert self.js is not None
        ack_wait = self.settings.bridge_ack_wait_s
        config = ConsumerConfig(
            durable_name=self.settings.bridge_consumer,
            filter_subject=TRIGGER_PREFIX + ">",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_deliver=self.settings.bridge_max_deliver,
            # No consumer-level `backoff`: JetStream lets it override the delay of a nak
            # (measured: nak(0.1) came back after 0.1, 2.1, 6.1 s with backoff [2, 4, 8]), and
            # the bridge's retries back off by their nak delays, which grow per attempt.
            max_ack_pending=max(1000, self.settings.bridge_max_in_flight * 4),
        )
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        self._sub = await self.js.pull_subscribe(
            TRIGGER_PREFIX + ">",
            durable=self.settings.bridge_consumer,
            stream=self.settings.bridge_stream,
            config=config,
        )
        self._consumer_stale = False

    async def _fetch_loop(self, stop: asyncio.Event) -> None:
        batch = self.settings.bridge_fetch_batch
        while not stop.is_set():
            try:
                if self._consumer_stale:
                    await self._ensure_stream()
                    await self._bind_consumer()
                assert self._sub is not None
                messages = await self._sub.fetch(
                    batch, timeout=FETCH_EXPIRES_S, heartbeat=self._fetch_heartbeat()
                )
            except (NatsTimeoutError, TimeoutError):
                continue  # nothing to do: the normal case when idle
            except NotFoundError as exc:  # the consumer (or stream) is gone: make it again
                log.warning("consumer not found (%s); creating it again", exc)
                self._consumer_stale = True
                continue
            except Exception as exc:  # disconnected, server restarting: reconnection rebinds
                # Not rebinding here: deliveries on their way to this inbox would be dropped.
                log.warning("fetch failed (%s); trying again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            for message in messages:
                await self._slots.acquire()
                task = asyncio.create_task(self._handle_guarded(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _fetch_heartbeat(self) -> float | None:
        """Idle heartbeats for the fetch's long poll, except when messages already wait in the
        subscription: nats-py 2.16 then sends its no-wait request without ``expires`` but with
        the heartbeat, which the server refuses (400), and the drained messages are dropped."""
        pending = getattr(getattr(self._sub, "_sub", None), "_pending_queue", None)
        return FETCH_HEARTBEAT_S if pending is not None and pending.empty() else None

    # --- one message ----------------------------------------------------------------------------

    async def _handle_guarded(self, msg: Msg) -> None:
        self.metrics.in_flight.inc()
        try:
            await self.handle(msg)
        except NATS_TRANSIENT as exc:
            # No ack: the message comes back after ack_wait and is handled again, idempotently.
            log.warning("message left for redelivery: %s", exc)
        except Exception:
            log.exception("unexpected error while handling a message; left for redelivery")
        finally:
            self.metrics.in_flight.dec()
            self._slots.release()

    async def handle(self, msg: Msg) -> None:
        """Take one trigger message to its ack, nak or term."""
        self.metrics.received.inc()
        meta = msg.metadata
        if meta.num_delivered > 1:
            self.metrics.redelivered.inc()
        try:
            request = decode_request(msg.data, msg.subject, self.settings.bridge_max_message_bytes)
        except Rejection as rejection:
            await self._reject(msg, rejection)
            return
        seq = meta.sequence.stream
        active = self._active.get(request.request_id)
        if active == seq:  # redelivered while this bridge still works on it
            await msg.in_progress()
            return
        if active is not None:
            # Another copy of the request is being handled right now: look again once it is
            # done. Acking here could drop the copy that the claim is waiting for.
            await msg.nak(delay=self.settings.bridge_retry_base_s)
            return
        self._active[request.request_id] = seq
        try:
            await self._claim_and_submit(msg, request, seq)
        finally:
            self._active.pop(request.request_id, None)

    async def _claim_and_submit(self, msg: Msg, request: PipelineRequest, seq: int) -> None:
        assert self.claims is not None
        engine = request.engine or get_job(request.pipeline).default_engine
        created, record, revision = await self.claims.claim(
            ClaimRecord.for_request(request, engine, seq)
        )
        if created:
            await self._publish_status(record)
        elif record.state is not RunState.accepted or record.run_id:
            await self._duplicate(msg, request.request_id, record)
            return
        elif record.attempts == 0:  # claimed by a delivery that died before submitting
            await self._publish_status(record)
        # Claimed and not submitted yet: whichever copy gets here submits (idempotent on the
        # run name); a message is acked only once the claim holds a run or an end.
        await self._submit(msg, record, revision)

    async def _submit(self, msg: Msg, record: ClaimRecord, revision: int) -> None:
        assert self.claims is not None
        started = time.perf_counter()
        keep_alive: asyncio.Task[None] | None = None
        try:
            engine = self.engines.get(record.engine)
            if blocks(engine):  # a slow submission must not be redelivered meanwhile
                keep_alive = asyncio.create_task(self._keep_in_progress(msg))
            async with self._submit_slots:
                submitted = await call_engine(
                    engine,
                    engine.submit,
                    record.pipeline,
                    record.parameters,
                    run_name_for(record.pipeline, record.request_id),
                    record.experiment,
                )
        except Exception as exc:
            await self._submit_failed(msg, record, revision, exc)
            return
        finally:
            if keep_alive is not None:
                keep_alive.cancel()
        self.metrics.submit_latency.observe(time.perf_counter() - started)
        self.metrics.submitted.labels(engine=record.engine).inc()
        record.state, record.run_id, record.run_url = (
            RunState.submitted,
            submitted.run_id,
            submitted.url,
        )
        record.attempts += 1
        # The run exists now: only this process knows its id, so ride out a NATS outage here
        # rather than leave the message for a redelivery that would submit it again.
        try:
            revision = await self._record_submitted(msg, record, revision)
        except NATS_TRANSIENT:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(NATS_TRANSIENT),
                wait=wait_exponential(multiplier=0.1, max=2.0),
                stop=stop_after_delay(PERSIST_TIMEOUT_S),
                reraise=True,
            ):
                with attempt:
                    revision = await self._record_submitted(msg, record, revision)
        log.info(
            "submitted",
            extra={
                "request_id": record.request_id,
                "run_id": record.run_id,
                "engine": record.engine,
            },
        )
        assert self.watcher is not None
        self.watcher.follow(record, revision)

    async def _record_submitted(self, msg: Msg, record: ClaimRecord, revision: int) -> int:
        revision = await self._save(record, revision)
        await self._publish_status(record)
        await msg.ack()
        return revision

    async def _submit_failed(
        self, msg: Msg, record: ClaimRecord, revision: int, exc: Exception
    ) -> None:
        record.attempts += 1
        attempts = record.attempts
        extra = {"request_id": record.request_id, "engine": record.engine}
        if is_transient(exc) and attempts < self.settings.bridge_max_deliver:
            await self._save(record, revision)
            delay = min(
                self.settings.bridge_retry_max_s,
                self.settings.bridge_retry_base_s * 2 ** (attempts - 1),
            )
            log.warning("submission failed, retrying in %.1f s: %s", delay, exc, extra=extra)
            await msg.nak(delay=delay)
            return
        reason = str(exc) or type(exc).__name__
        if is_transient(exc):
            reason = f"gave up after {attempts} attempts: {reason}"
        record.state = RunState.failed
        record.error = StatusError(code="submit_failed", message=reason)
        self.metrics.failed.labels(engine=record.engine).inc()
        await self._save(record, revision)
        await self._publish_status(record)
        await msg.term()
        log.error("submission failed: %s", reason, extra=extra)

    async def _duplicate(
        self, msg: Msg, request_id: str, record: ClaimRecord | None = None
    ) -> None:
        """A request already claimed: never submit again, re-publish where it stands, ack."""
        self.metrics.duplicates.inc()
        if record is None and self.claims is not None:
            found = await self.claims.get(request_id)
            record = found[0] if found else None
        if record is not None:
            await self._publish_status(record)
        await msg.ack()
        log.info("duplicate request", extra={"request_id": request_id})

    async def _reject(self, msg: Msg, rejection: Rejection) -> None:
        """Status ``rejected`` (when the id is known and unclaimed), dead letter, terminate."""
        assert self.js is not None and self.claims is not None
        self.metrics.rejected.labels(reason=rejection.code.value).inc()
        seq = msg.metadata.sequence.stream
        headers = {
            "Llmw-Reject-Code": rejection.code.value,
            "Llmw-Reject-Reason": " ".join(rejection.reason.split())[:1000],
            "Llmw-Original-Subject": msg.subject,
            "Llmw-Stream-Seq": str(seq),
            "Nats-Msg-Id": f"dead-letter-{self.settings.bridge_stream}-{seq}",
        }
        await self.js.publish(dead_letter_subject(rejection.code), msg.data, headers=headers)
        # Too large or undecodable, a request's id is still in its header (the contract sends
        # it as Nats-Msg-Id), so its requester learns why instead of waiting.
        request_id = rejection.request_id or header_request_id(msg)
        if request_id and await self.claims.get(request_id) is None:
            from bridge.messages import PipelineStatus

            status = PipelineStatus(
                request_id=request_id,
                pipeline=rejection.pipeline,
                state=RunState.rejected,
                error=StatusError(code=rejection.code.value, message=rejection.reason),
            )
            await self.js.publish(status_subject(request_id), status.encode())
        await msg.term()
        log.warning(
            "rejected: %s",
            rejection.reason,
            extra={"request_id": request_id, "code": rejection.code.value},
        )

    # --- helpers --------------------------------------------------------------------------------

    async def _publish_status(self, record: ClaimRecord) -> None:
        assert self.js is not None
        await self.js.publish(status_subject(record.request_id), record.status().encode())

    async def _save(self, record: ClaimRecord, revision: int) -> int:
        assert self.claims is not None
        try:
            return await self.claims.save(record, revision)
        except KeyWrongLastSequenceError:
            # Only this request's handler or its watcher writes a record, one after the other;
            # a conflict means an earlier write landed although its answer was lost: ours is newer.
            found = await self.claims.get(record.request_id)
            if found is None:
                raise
            return await self.claims.save(record, found[1])

    async def _keep_in_progress(self, msg: Msg) -> None:
        """Tell JetStream the message is still being worked on while a submission is slow."""
        interval = max(0.5, self.settings.bridge_ack_wait_s / 3)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            while True:
                await asyncio.sleep(interval)
                await msg.in_progress()


def stream_config(name: str) -> StreamConfig:
    """The stream as the bridge creates it when missing."""
    return StreamConfig(
        name=name,
        subjects=STREAM_SUBJECTS,
        storage=StorageType.FILE,
        max_age=STREAM_MAX_AGE_S,
        duplicate_window=STREAM_DUPLICATE_WINDOW_S,
        description="AI pipeline triggers, status events and dead letters",
    )


def header_request_id(msg: Msg) -> str | None:
    """The ``Nats-Msg-Id`` header, when it is a valid request id."""
    value = (msg.headers or {}).get("Nats-Msg-Id")
    return value if value and re.fullmatch(REQUEST_ID_PATTERN, value) else None


def stream_differences(config: Any) -> list[str]:
    """How an existing stream's settings differ from the bridge's (empty when they agree)."""
    differences = []
    subjects = sorted(config.subjects or [])
    if subjects != STREAM_SUBJECTS:
        differences.append(f"subjects {subjects} (expected {STREAM_SUBJECTS})")
    if config.storage != StorageType.FILE:
        differences.append(f"storage {config.storage} (expected file)")
    if config.max_age != STREAM_MAX_AGE_S:
        differences.append(f"max_age {config.max_age} s (expected {STREAM_MAX_AGE_S:g} s)")
    if config.duplicate_window != STREAM_DUPLICATE_WINDOW_S:
        differences.append(
            f"duplicate_window {config.duplicate_window} s "
            f"(expected {STREAM_DUPLICATE_WINDOW_S:g} s)"
        )
    return differences
