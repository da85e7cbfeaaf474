"""One trigger message, from delivery to its ack, nak or term.

Decode and validate (else reject: status, dead letter, terminate) -> claim the ``request_id`` in
KV (else it is a duplicate: re-publish its status, ack) -> ``accepted`` -> submit off the event
loop (transient failure: nak with a growing delay; permanent: ``failed``) -> ``submitted`` -> ack
-> the watcher follows the run. A record is saved before its event is published, and whoever
picks a request up again re-publishes where it stands: a crash can repeat an event, never lose or
reorder one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from nats.aio.msg import Msg
from nats.js.errors import KeyWrongLastSequenceError
from opentelemetry.trace import SpanKind
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from bridge.claims import ClaimRecord
from bridge.context import BridgeContext
from bridge.dead_letter import DeadLetters
from bridge.engines import blocks, call_engine, is_transient, run_name_for
from bridge.messages import (
    PipelineRequest,
    Rejection,
    RunState,
    StatusError,
    decode_request,
    status_subject,
)
from bridge.topology import NATS_TRANSIENT
from components import tracing
from components.registry import get_job

log = logging.getLogger("llmw.bridge")

PERSIST_TIMEOUT_S = 300.0
Follow = Callable[[ClaimRecord, int], None]  # hands a submitted run to the watcher


class MessageHandler:
    """Handles trigger messages, each on its own, many at once; ``follow`` receives each
    submitted run (the watcher's ``follow``)."""

    def __init__(self, ctx: BridgeContext, follow: Follow) -> None:
        self.ctx = ctx
        self.follow = follow
        self.dead_letters = DeadLetters(ctx.js, ctx.claims, ctx.settings.bridge_stream, ctx.metrics)
        self._active: dict[str, int] = {}  # request_id -> stream sequence being handled
        self._submit_slots = asyncio.Semaphore(ctx.settings.bridge_workers)

    async def handle_guarded(self, msg: Msg) -> None:
        """``handle``, never raising: what it could not finish is left for redelivery."""
        self.ctx.metrics.in_flight.inc()
        try:
            await self.handle(msg)
        except NATS_TRANSIENT as exc:
            # No ack: the message comes back after ack_wait and is handled again, idempotently.
            log.warning("message left for redelivery: %s", exc)
        except Exception:
            log.exception("unexpected error while handling a message; left for redelivery")
        finally:
            self.ctx.metrics.in_flight.dec()

    async def handle(self, msg: Msg) -> None:
        """Take one trigger message to its ack, nak or term."""
        self.ctx.metrics.received.inc()
        meta = msg.metadata
        if meta.num_delivered > 1:
            self.ctx.metrics.redelivered.inc()
        try:
            request = decode_request(
                msg.data, msg.subject, self.ctx.settings.bridge_max_message_bytes
            )
        except Rejection as rejection:
            await self.dead_letters.reject(msg, rejection)
            return
        seq = meta.sequence.stream
        active = self._active.get(request.request_id)
        if active == seq:  # redelivered while this bridge still works on it
            await msg.in_progress()
            return
        if active is not None:
            # Another copy of the request is being handled right now: look again once it is
            # done. Acking here could drop the copy that the claim is waiting for.
            await msg.nak(delay=self.ctx.settings.bridge_retry_base_s)
            return
        self._active[request.request_id] = seq
        try:
            await self._claim_and_submit(msg, request, seq)
        finally:
            self._active.pop(request.request_id, None)

    async def _claim_and_submit(self, msg: Msg, request: PipelineRequest, seq: int) -> None:
        engine = request.engine or get_job(request.pipeline).default_engine
        claim = ClaimRecord.for_request(request, engine, seq)
        claim.traceparent = tracing.traceparent_in(msg.headers)
        with self._span("bridge accept", claim):
            created, record, revision = await self.ctx.claims.claim(claim)
            if created:
                await self._publish_status(record)
            elif record.state is not RunState.accepted or record.run_id:
                await self._duplicate(msg, record)
                return
            elif record.attempts == 0:  # claimed by a delivery that died before submitting
                await self._publish_status(record)
        # Claimed and not submitted yet: whichever copy gets here submits (idempotent on the
        # run name); a message is acked only once the claim holds a run or an end.
        with self._span("bridge submit", record):
            await self._submit(msg, record, revision)

    @staticmethod
    def _span(name: str, record: ClaimRecord) -> AbstractContextManager[object]:
        """A span in the request's trace (the one its publisher started, when it sent one)."""
        attributes = {"llmw.request_id": record.request_id, "llmw.pipeline": record.pipeline}
        return tracing.span_in(record.traceparent, name, attributes, SpanKind.CONSUMER)

    async def _submit(self, msg: Msg, record: ClaimRecord, revision: int) -> None:
        started = time.perf_counter()
        keep_alive: asyncio.Task[None] | None = None
        try:
            engine = self.ctx.engines.get(record.engine)
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
        self.ctx.metrics.submit_latency.observe(time.perf_counter() - started)
        self.ctx.metrics.submitted.labels(engine=record.engine).inc()
        record.state, record.run_id, record.run_url = (
            RunState.submitted,
            submitted.run_id,
            submitted.url,
        )
        record.attempts += 1
        revision = await self._persist_submitted(msg, record, revision)
        log.info(
            "submitted",
            extra={
                "request_id": record.request_id,
                "run_id": record.run_id,
                "engine": record.engine,
            },
        )
        self.follow(record, revision)

    async def _persist_submitted(self, msg: Msg, record: ClaimRecord, revision: int) -> int:
        """Save, publish and ack a submitted run. The run exists now and only this process knows
        its id, so ride out a NATS outage here rather than leave the message for a redelivery
        that would submit it again."""
        try:
            return await self._record_submitted(msg, record, revision)
        except NATS_TRANSIENT:
            pass
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(NATS_TRANSIENT),
            wait=wait_exponential(multiplier=0.1, max=2.0),
            stop=stop_after_delay(PERSIST_TIMEOUT_S),
            reraise=True,
        ):
            with attempt:
                revision = await self._record_submitted(msg, record, revision)
        return revision

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
        if is_transient(exc) and attempts < self.ctx.settings.bridge_max_deliver:
            await self._save(record, revision)
            delay = min(
                self.ctx.settings.bridge_retry_max_s,
                self.ctx.settings.bridge_retry_base_s * 2 ** (attempts - 1),
            )
            log.warning("submission failed, retrying in %.1f s: %s", delay, exc, extra=extra)
            await msg.nak(delay=delay)
            return
        reason = str(exc) or type(exc).__name__
        if is_transient(exc):
            reason = f"gave up after {attempts} attempts: {reason}"
        record.state = RunState.failed
        record.error = StatusError(code="submit_failed", message=reason)
        self.ctx.metrics.failed.labels(engine=record.engine).inc()
        await self._save(record, revision)
        await self._publish_status(record)
        await msg.term()
        log.error("submission failed: %s", reason, extra=extra)

    async def _duplicate(self, msg: Msg, record: ClaimRecord) -> None:
        """A request already claimed: never submit again, re-publish where it stands, ack."""
        self.ctx.metrics.duplicates.inc()
        await self._publish_status(record)
        await msg.ack()
        log.info("duplicate request", extra={"request_id": record.request_id})

    async def _publish_status(self, record: ClaimRecord) -> None:
        await self.ctx.js.publish(status_subject(record.request_id), record.status().encode())

    async def _save(self, record: ClaimRecord, revision: int) -> int:
        try:
            return await self.ctx.claims.save(record, revision)
        except KeyWrongLastSequenceError:
            # Only this request's handler or its watcher writes a record, one after the other;
            # a conflict means an earlier write landed although its answer was lost: ours is newer.
            found = await self.ctx.claims.get(record.request_id)
            if found is None:
                raise
            return await self.ctx.claims.save(record, found[1])

    async def _keep_in_progress(self, msg: Msg) -> None:
        """Tell JetStream the message is still being worked on while a submission is slow."""
        interval = max(0.5, self.ctx.settings.bridge_ack_wait_s / 3)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            while True:
                await asyncio.sleep(interval)
                await msg.in_progress()
