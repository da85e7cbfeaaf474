"""Follows submitted runs to their end and publishes each change of state.

After a restart it picks up every claim the KV says was submitted and has not ended, and
re-publishes where each stands. A local run that the previous bridge was doing when it stopped is
started again under its run id (its steps converge after a crash), at most
``bridge_local_resume_attempts`` times, then it ends failed. A record is saved before its event
goes out, so a crash may repeat an event, never lose or reorder one; ``running`` is always
published before a final state, even when the run ended between two polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bridge.claims import ClaimRecord
from bridge.context import BridgeContext
from bridge.engines import INTERRUPTED, ResumableEngine, call_engine, run_state
from bridge.messages import RunState, StatusError, status_subject
from components import tracing

log = logging.getLogger("llmw.bridge.watcher")

RESCAN_S = 60.0  # how often the KV is listed again for unfinished runs nobody follows
WATCH_SLICE = 32  # runs checked at once


class Watcher:
    """Polls each followed run every ``bridge_poll_s`` until it ends."""

    def __init__(self, ctx: BridgeContext) -> None:
        self.ctx = ctx
        self._followed: dict[str, tuple[ClaimRecord, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._polls = asyncio.Semaphore(ctx.settings.bridge_workers)

    async def start(self) -> None:
        """Resume the runs the KV says are not done, then poll in the background."""
        resumed = await self.rescan()
        if resumed:
            log.info("resuming %d unfinished runs", resumed)
        self._task = asyncio.create_task(self._loop())

    async def rescan(self) -> int:
        """Follow every unfinished claim not followed yet; how many were found.

        At start, and again now and then: a listing of the bucket right after a (re)connect has
        been seen to come back empty, and nothing else would pick those runs up.
        """
        found = 0
        for record, revision in await self.ctx.claims.unfinished():
            if record.request_id in self._followed:
                continue
            # Its last event may not have gone out before the crash.
            await self._publish(record)
            self.follow(record, revision)
            found += 1
        return found

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def follow(self, record: ClaimRecord, revision: int) -> None:
        self._followed[record.request_id] = (record, revision)

    @property
    def following(self) -> int:
        return len(self._followed)

    async def _loop(self) -> None:
        passes = 0
        rescan_every = max(1, round(RESCAN_S / self.ctx.settings.bridge_poll_s))
        while True:
            await asyncio.sleep(self.ctx.settings.bridge_poll_s)
            await self.poll_once()
            passes += 1
            if passes % rescan_every == 0:
                try:
                    await self.rescan()
                except Exception as exc:  # NATS away: the next rescan tries again
                    log.warning("cannot list unfinished runs: %s", exc)

    async def poll_once(self) -> None:
        """One pass over every followed run."""
        items = list(self._followed.values())
        # A small slice at a time: thousands of runs in one gather flood the connection with KV
        # writes and cost far more CPU than the same writes a few at a time (measured: twice the
        # bridge's CPU per request), and a large slice queues its writes ahead of new requests'.
        for start in range(0, len(items), WATCH_SLICE):
            await asyncio.gather(
                *(self._check(record, rev) for record, rev in items[start : start + WATCH_SLICE])
            )

    async def _check(self, record: ClaimRecord, revision: int) -> None:
        extra = {"request_id": record.request_id, "run_id": record.run_id, "engine": record.engine}
        assert record.run_id is not None
        try:
            async with self._polls:
                engine = self.ctx.engines.get(record.engine)
                status = await call_engine(engine, engine.status, record.run_id)
        except Exception as exc:  # the engine's API is down: try again next pass
            log.warning("cannot read the run's status: %s", exc, extra=extra)
            return
        if status.state == INTERRUPTED and isinstance(engine, ResumableEngine):
            limit = self.ctx.settings.bridge_local_resume_attempts
            if record.resumes < limit:
                await self._resume(record, revision, engine, extra)
                return
            used = f"{record.resumes} of LLMW_BRIDGE_LOCAL_RESUME_ATTEMPTS={limit}"
            status.error = f"{status.error}; not started again ({used} used)"
        state = run_state(status.state)
        if state is record.state or state is RunState.submitted:
            return
        updated = record.model_copy()  # fields are replaced below, never mutated in place
        try:
            if state.final and updated.state is not RunState.running:
                updated.state = RunState.running
                revision = await self.ctx.claims.save(updated, revision)
                await self._publish(updated)
            updated.state = state
            if state is RunState.failed:
                message = status.error or "run failed"
                updated.error = StatusError(code="run_failed", message=message)
            if status.url:
                updated.run_url = status.url
            revision = await self.ctx.claims.save(updated, revision)
            await self._publish(updated)
        except Exception as exc:  # NATS away: the next pass repeats it
            log.warning("cannot publish the run's status: %s", exc, extra=extra)
            return
        log.info("run %s", state.value, extra={**extra, "state": state.value})
        if not state.final:
            self._followed[record.request_id] = (updated, revision)
            return
        self._followed.pop(record.request_id, None)
        if state is RunState.succeeded:
            self.ctx.metrics.runs_succeeded.labels(engine=record.engine).inc()
        else:
            self.ctx.metrics.failed.labels(engine=record.engine).inc()

    async def _resume(
        self, record: ClaimRecord, revision: int, engine: ResumableEngine, extra: dict[str, Any]
    ) -> None:
        """Start an interrupted local run again under its run id; its state stays as it is."""
        assert record.run_id is not None
        updated = record.model_copy(update={"resumes": record.resumes + 1})
        try:
            # Counted before it starts: a bridge that keeps crashing cannot resume it forever.
            revision = await self.ctx.claims.save(updated, revision)
        except Exception as exc:  # NATS away: the next pass tries again
            log.warning("cannot record the resumption: %s", exc, extra=extra)
            return
        self._followed[record.request_id] = (updated, revision)
        try:
            await call_engine(
                engine, engine.resume, record.pipeline, record.parameters, record.run_id
            )
        except Exception as exc:  # still unknown next pass: resumed again, or failed
            log.warning("cannot resume the run: %s", exc, extra=extra)
            return
        limit = self.ctx.settings.bridge_local_resume_attempts
        log.info("resumed an interrupted run (%d of %d)", updated.resumes, limit, extra=extra)

    async def _publish(self, record: ClaimRecord) -> None:
        attributes = {"llmw.request_id": record.request_id, "llmw.state": record.state.value}
        with tracing.span_in(record.traceparent, f"bridge status {record.state.value}", attributes):
            await self.ctx.js.publish(status_subject(record.request_id), record.status().encode())
