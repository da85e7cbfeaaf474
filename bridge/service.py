"""The bridge: a durable pull consumer on AI_PIPELINE turning requests into exactly one run each.

This module is the service's life: connect, set up the stream, claims, consumer and watcher
(``bridge.topology``), fetch and hand each message to the handler (``bridge.handler``, which
rejects through ``bridge.dead_letter``) with a bound on the messages in flight, and on stop:
stop fetching, finish what is in flight, stop the watcher, leave the consumer, flush, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoServersError
from nats.js import JetStreamContext

from bridge.claims import ClaimStore
from bridge.context import BridgeContext
from bridge.dead_letter import header_request_id
from bridge.engines import EngineSet
from bridge.handler import PERSIST_TIMEOUT_S, MessageHandler
from bridge.metrics import BridgeMetrics
from bridge.topology import (
    FETCH_EXPIRES_S,
    FETCH_HEARTBEAT_S,
    NATS_TRANSIENT,
    STREAM_DUPLICATE_WINDOW_S,
    STREAM_MAX_AGE_S,
    STREAM_SUBJECTS,
    TriggerConsumer,
    stream_config,
    stream_differences,
)
from bridge.watcher import Watcher
from components.settings import Settings

__all__ = [
    "FETCH_EXPIRES_S",
    "FETCH_HEARTBEAT_S",
    "NATS_TRANSIENT",
    "PERSIST_TIMEOUT_S",
    "STREAM_DUPLICATE_WINDOW_S",
    "STREAM_MAX_AGE_S",
    "STREAM_SUBJECTS",
    "Bridge",
    "header_request_id",
    "stream_config",
    "stream_differences",
]

log = logging.getLogger("llmw.bridge")
START_RETRY_S = 2.0


class Bridge:
    """One bridge process: connection, stream, consumer, handler and the watcher."""

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
        self.consumer: TriggerConsumer | None = None
        self.handler: MessageHandler | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.bridge_max_in_flight)

    @property
    def ready(self) -> bool:
        """Connected to NATS with the consumer bound."""
        return (
            self.nc is not None
            and self.nc.is_connected
            and self.consumer is not None
            and self.consumer.bound
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then stop fetching, finish in-flight work and drain."""
        await self._start(stop)
        if stop.is_set() or self.watcher is None:
            await self._close()
            return
        assert self.consumer is not None
        try:
            await self.consumer.fetch_loop(stop, self._dispatch)
        finally:
            await self._drain()
            await self.watcher.stop()
            await self._close()

    async def _start(self, stop: asyncio.Event) -> None:
        """Connect, then set up stream, claims, consumer and watcher; all of it is retried
        until it succeeds, so NATS going away in the middle of a start is only a delay."""
        while not stop.is_set():
            try:
                if self.nc is None:
                    await self._connect()
                await self._set_up()
                return
            except (*NATS_TRANSIENT, NoServersError) as exc:
                log.warning("cannot start yet (%s); trying again", exc or type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), START_RETRY_S)

    async def _set_up(self) -> None:
        assert self.js is not None
        if self.consumer is None:
            self.consumer = TriggerConsumer(self.settings, self.js)
        await self.consumer.ensure_stream()
        self.claims = await ClaimStore.open(self.js, self.settings.bridge_kv_bucket)
        await self.consumer.bind()
        ctx = BridgeContext(self.settings, self.js, self.claims, self.engines, self.metrics)
        watcher = Watcher(ctx)
        await watcher.start()
        self.handler = MessageHandler(ctx, watcher.follow)
        self.watcher = watcher

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

    async def _dispatch(self, msg: Msg) -> None:
        """Handle ``msg`` in a task of its own once fewer than the in-flight cap are running."""
        assert self.handler is not None
        await self._slots.acquire()
        task = asyncio.create_task(self.handler.handle_guarded(msg))
        self._tasks.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _drain(self) -> None:
        """Wait for every message in flight to reach its ack, nak or term."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close(self) -> None:
        # Every publish and ack was awaited already; what is left is to leave the consumer
        # (pending messages go back to the stream) and flush before closing.
        if self.consumer is not None:
            await self.consumer.unsubscribe()
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
        if self.consumer is not None:
            self.consumer.stale = True
