"""The requester's side: publish a request, follow its status events to the end."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js.api import DeliverPolicy
from nats.js.errors import NoStreamResponseError
from opentelemetry.trace import SpanKind

from bridge.messages import PipelineRequest, PipelineStatus, status_subject, trigger_subject
from components import tracing
from components.settings import Settings


class TriggerError(RuntimeError):
    """The request could not be published, or its status did not arrive in time."""


async def connect(settings: Settings) -> NATS:
    """A NATS connection from the settings (one try: a client should fail fast)."""
    from bridge.connection import connect_options, redact_url

    async def quiet(exc: Exception) -> None:  # the failure is reported once, below
        return None

    # One attempt per server (nats-py reads 0 attempts as "forever" at the first connect).
    options = {**connect_options(settings), "allow_reconnect": False, "max_reconnect_attempts": 1}
    try:
        return await nats.connect(**options, error_cb=quiet)
    except Exception as exc:
        raise TriggerError(f"cannot reach NATS at {redact_url(settings.nats_url)}: {exc}") from exc


async def publish_request(nc: NATS, request: PipelineRequest, stream: str) -> bool:
    """Publish with ``Nats-Msg-Id`` = ``request_id``; False when JetStream saw it already."""
    js = nc.jetstream()
    subject = trigger_subject(request.pipeline)
    span = tracing.tracer().start_as_current_span(
        f"publish {subject}",
        kind=SpanKind.PRODUCER,
        attributes={"llmw.request_id": request.request_id, "llmw.pipeline": request.pipeline},
    )
    try:
        with span:
            ack = await js.publish(
                subject,
                request.encode(),
                headers=tracing.inject({"Nats-Msg-Id": request.request_id}),
                stream=stream,
            )
    except NoStreamResponseError:
        raise TriggerError(f"no stream {stream} takes {subject}: is the bridge running?") from None
    return not ack.duplicate


async def statuses(
    nc: NATS, request_id: str, timeout_s: float | None = None
) -> AsyncIterator[PipelineStatus]:
    """Every status event of the request from the first, until a final one.

    An ordered consumer over the stream delivers the events published before it started too,
    so following after publishing never misses one.
    """
    js = nc.jetstream()
    sub = await js.subscribe(
        status_subject(request_id), ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    try:
        while True:
            wait = None if deadline is None else max(0.001, deadline - loop.time())
            try:
                msg = await sub.next_msg(timeout=wait)
            except (TimeoutError, nats.errors.TimeoutError):
                raise TriggerError(
                    f"no final status for {request_id} within {timeout_s:g} s"
                ) from None
            try:
                status = PipelineStatus.decode(msg.data)
            except Exception:  # not ours to judge: skip what we cannot read
                continue
            yield status
            if status.state.final:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def trigger(
    settings: Settings,
    request: PipelineRequest,
    wait: bool = False,
    on_status: Callable[[PipelineStatus], Any] | None = None,
    timeout_s: float | None = None,
    on_published: Callable[[], Any] | None = None,
) -> PipelineStatus | None:
    """Publish ``request`` (``on_published`` once JetStream has acknowledged it); with ``wait``,
    pass each status to ``on_status`` and return the last."""
    tracing.configure(settings, "llmw-trigger")
    nc = await connect(settings)
    try:
        await publish_request(nc, request, settings.bridge_stream)
        if on_published is not None:
            on_published()
        if not wait:
            return None
        last = None
        async for status in statuses(nc, request.request_id, timeout_s):
            last = status
            if on_status is not None:
                on_status(status)
        return last
    finally:
        tracing.flush()
        with contextlib.suppress(Exception):
            await nc.close()
