"""Where the bridge's messages live: the AI_PIPELINE stream, the durable pull consumer on its
trigger subjects, and the loop that fetches from it.

The stream is created when missing and only reported when it differs; the consumer is created
or updated at every bind, and bound again after a reconnect or when the server lost it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError

from bridge.messages import TRIGGER_PREFIX
from components.settings import Settings

log = logging.getLogger("llmw.bridge")

STREAM_SUBJECTS = ["ai.pipeline.>"]
STREAM_MAX_AGE_S = 24 * 3600.0
STREAM_DUPLICATE_WINDOW_S = 120.0
FETCH_EXPIRES_S = 2.0
FETCH_HEARTBEAT_S = 0.5
# What a NATS outage raises at a publish, a KV write or an ack.
NATS_TRANSIENT = (
    ConnectionClosedError,
    NatsTimeoutError,
    NoRespondersError,
    ServiceUnavailableError,
    TimeoutError,
    OSError,
)


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


def consumer_config(settings: Settings) -> ConsumerConfig:
    """The bridge's durable pull consumer on every trigger subject."""
    return ConsumerConfig(
        durable_name=settings.bridge_consumer,
        filter_subject=TRIGGER_PREFIX + ">",
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=settings.bridge_ack_wait_s,
        max_deliver=settings.bridge_max_deliver,
        # No consumer-level `backoff`: JetStream lets it override the delay of a nak
        # (measured: nak(0.1) came back after 0.1, 2.1, 6.1 s with backoff [2, 4, 8]), and
        # the bridge's retries back off by their nak delays, which grow per attempt.
        max_ack_pending=max(1000, settings.bridge_max_in_flight * 4),
    )


async def ensure_stream(js: JetStreamContext, name: str) -> None:
    """Create the stream when missing; when it differs, say how and leave it as it is."""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(stream_config(name))
        log.info("created stream %s", name)
        return
    for difference in stream_differences(info.config):
        log.warning("stream %s differs from what the bridge expects: %s", name, difference)


class TriggerConsumer:
    """The stream and the bridge's subscription to its consumer, bound again when stale."""

    def __init__(self, settings: Settings, js: JetStreamContext) -> None:
        self.settings = settings
        self.js = js
        self.sub: JetStreamContext.PullSubscription | None = None
        self.stale = False

    @property
    def bound(self) -> bool:
        return self.sub is not None and not self.stale

    async def ensure_stream(self) -> None:
        await ensure_stream(self.js, self.settings.bridge_stream)

    async def setup(self) -> None:
        """Make sure of the stream, then bind the consumer."""
        await self.ensure_stream()
        await self.bind()

    async def bind(self) -> None:
        """Create or update the durable pull consumer and subscribe to it."""
        await self.unsubscribe()
        self.sub = await self.js.pull_subscribe(
            TRIGGER_PREFIX + ">",
            durable=self.settings.bridge_consumer,
            stream=self.settings.bridge_stream,
            config=consumer_config(self.settings),
        )
        self.stale = False

    async def unsubscribe(self) -> None:
        """Leave the consumer: what this subscription held unacked goes back to the stream."""
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()

    async def fetch_loop(
        self, stop: asyncio.Event, dispatch: Callable[[Msg], Awaitable[None]]
    ) -> None:
        """Fetch batches until ``stop`` is set, handing each message to ``dispatch``."""
        batch = self.settings.bridge_fetch_batch
        while not stop.is_set():
            try:
                if self.stale:
                    await self.setup()
                assert self.sub is not None
                messages = await self.sub.fetch(
                    batch, timeout=FETCH_EXPIRES_S, heartbeat=self._fetch_heartbeat()
                )
            except (NatsTimeoutError, TimeoutError):
                continue  # nothing to do: the normal case when idle
            except NotFoundError as exc:  # the consumer (or stream) is gone: make it again
                log.warning("consumer not found (%s); creating it again", exc)
                self.stale = True
                continue
            except Exception as exc:  # disconnected, server restarting: reconnection rebinds
                # Not rebinding here: deliveries on their way to this inbox would be dropped.
                log.warning("fetch failed (%s); trying again", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
                continue
            for message in messages:
                await dispatch(message)

    def _fetch_heartbeat(self) -> float | None:
        """Idle heartbeats for the fetch's long poll, except when messages already wait in the
        subscription: nats-py 2.16 then sends its no-wait request without ``expires`` but with
        the heartbeat, which the server refuses (400), and the drained messages are dropped."""
        idle = self.sub is not None and self.sub.pending_msgs == 0
        return FETCH_HEARTBEAT_S if idle else None
