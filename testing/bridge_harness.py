"""Driving a bridge in tests and benchmarks: in a thread or a killable process, publishing
requests and reading status events and dead letters back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import nats
from nats.js.api import ConsumerInfo, DeliverPolicy
from nats.js.errors import NotFoundError

from bridge.engines import EngineSet
from bridge.messages import (
    DEAD_LETTER_PREFIX,
    STATUS_PREFIX,
    PipelineRequest,
    PipelineStatus,
    RunState,
    status_subject,
    trigger_subject,
)
from bridge.metrics import BridgeMetrics
from bridge.service import Bridge
from components.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STREAM = "AI_PIPELINE"  # the bridge's defaults (components.settings)
CONSUMER = "llmw-bridge"
READ_TIMEOUT_S = 30.0  # for one stored message to come back: generous, never waited on idle
INACTIVE_THRESHOLD_S = 5.0  # a reader's consumer outlives a reader that died by this much


def bridge_settings(url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "nats_url": url,
        "bridge_poll_s": 0.1,
        "bridge_ack_wait_s": 2.0,
        "bridge_retry_base_s": 0.05,
        "bridge_retry_max_s": 0.5,
        "bridge_http_host": "127.0.0.1",
        "bridge_http_port": 0,
    }
    return Settings(**(values | overrides))


class BridgeThread:
    """A Bridge serving on its own event loop in a thread; ``stop`` drains it like SIGTERM."""

    def __init__(self, settings: Settings, engines: EngineSet) -> None:
        self.metrics = BridgeMetrics()
        self.bridge = Bridge(settings, engines, self.metrics)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.bridge.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self, timeout_s: float = 15.0) -> BridgeThread:
        self.thread.start()
        wait_for(lambda: self.bridge.ready or self.error is not None, timeout_s, "bridge ready")
        if self.error is not None:
            raise self.error
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the bridge did not stop"
        self.loop.close()
        if self.error is not None:
            raise self.error


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


async def _publish(url: str, subject: str, data: bytes, msg_id: str | None) -> None:
    nc = await nats.connect(url)
    try:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        await nc.jetstream().publish(subject, data, headers=headers)
    finally:
        await nc.close()


def publish(url: str, data: bytes, pipeline: str = "document-ingestion", **kw: Any) -> None:
    """Publish raw bytes on a trigger subject (JetStream)."""
    asyncio.run(
        _publish(url, kw.get("subject") or trigger_subject(pipeline), data, kw.get("msg_id"))
    )


def request(request_id: str, engine: str = "argo", **parameters: Any) -> PipelineRequest:
    return PipelineRequest(
        request_id=request_id,
        pipeline="document-ingestion",
        engine=engine,
        parameters={"source": "examples/docs", **parameters},
    )


def send(url: str, req: PipelineRequest, msg_id: bool = True) -> None:
    publish(url, req.encode(), req.pipeline, msg_id=req.request_id if msg_id else None)


async def _stream_messages(
    url: str, subject: str, timeout_s: float = READ_TIMEOUT_S, stream: str = STREAM
) -> list[tuple[bytes, dict[str, str]]]:
    """Every message the stream holds on ``subject`` (wildcards allowed) when called, in order.

    The stream says how many it holds; exactly those are read back, however long they take to
    arrive (up to ``timeout_s`` each): no quiet window that a loaded machine could outlast.
    """
    nc = await nats.connect(url)
    found: list[tuple[bytes, dict[str, str]]] = []
    try:
        js = nc.jetstream()
        try:
            info = await js.stream_info(stream, subjects_filter=subject)
        except NotFoundError:
            return found  # no stream yet: nothing published
        count = sum((info.state.subjects or {}).values())
        if count == 0:
            return found
        sub = await js.subscribe(
            subject,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=INACTIVE_THRESHOLD_S,
        )
        while len(found) < count:
            try:
                msg = await sub.next_msg(timeout=timeout_s)
            except (TimeoutError, nats.errors.TimeoutError):
                raise AssertionError(
                    f"{stream} holds {count} messages on {subject}; {len(found)} came back"
                ) from None
            found.append((msg.data, dict(msg.headers or {})))
        # Tests poll this in loops: leave no consumer behind for the server to count.
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, (await sub.consumer_info()).name)
    finally:
        await nc.close()
    return found


def statuses(url: str, request_id: str, quiet_s: float | None = None) -> list[PipelineStatus]:
    """Every status event published for ``request_id`` so far, in order. (``quiet_s`` is
    ignored: kept for callers from when reading stopped after a quiet window.)"""
    raw = asyncio.run(_stream_messages(url, status_subject(request_id)))
    return [PipelineStatus.decode(data) for data, _ in raw]


def all_statuses(url: str) -> list[PipelineStatus]:
    """Every status event of every request so far, in stream order."""
    raw = asyncio.run(_stream_messages(url, STATUS_PREFIX + ">"))
    return [PipelineStatus.decode(data) for data, _ in raw]


def dead_letters(url: str) -> list[tuple[bytes, dict[str, str]]]:
    """Every dead letter so far (bytes, headers), in order."""
    return asyncio.run(_stream_messages(url, DEAD_LETTER_PREFIX + ">"))


async def _consumer_info(url: str, stream: str, consumer: str) -> ConsumerInfo | None:
    nc = await nats.connect(url)
    try:
        return await nc.jetstream().consumer_info(stream, consumer)
    except NotFoundError:
        return None
    finally:
        await nc.close()


def consumer_info(url: str, stream: str = STREAM, consumer: str = CONSUMER) -> ConsumerInfo | None:
    """The bridge's consumer as the server sees it (None when it does not exist)."""
    return asyncio.run(_consumer_info(url, stream, consumer))


def wait_consumer_settled(url: str, timeout_s: float = 30.0) -> ConsumerInfo:
    """The consumer's info once nothing is left to deliver and nothing delivered is unacked."""
    found: list[ConsumerInfo] = []

    def settled() -> bool:
        info = consumer_info(url)
        found[:] = [info] if info is not None else []
        return info is not None and info.num_pending == 0 and info.num_ack_pending == 0

    wait_for(settled, timeout_s, "the bridge's consumer to settle")
    return found[0]


def wait_for_state(
    url: str, request_id: str, state: RunState, timeout_s: float = 20.0
) -> list[PipelineStatus]:
    """The request's events once one of them has ``state``."""
    found: list[PipelineStatus] = []

    def reached() -> bool:
        nonlocal found
        found = statuses(url, request_id)
        return any(s.state is state for s in found)

    wait_for(reached, timeout_s, f"{request_id} {state.value}")
    return found


def states(events: list[PipelineStatus]) -> list[str]:
    return [event.state.value for event in events]


def collapsed(events: list[PipelineStatus]) -> list[str]:
    """The states with repeats in a row folded: a crash or restart may repeat an event."""
    names = states(events)
    return [name for n, name in enumerate(names) if n == 0 or names[n - 1] != name]


def packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


@dataclass
class Life:
    """One start of a bridge process: its pid, and when it died (``time.time()``: taken once it
    is dead when SIGKILLed here, or when it was found dead at the next start), if it did."""

    pid: int
    died: float | None = None


class BridgeProcess:
    """``testing.bridge_process`` in a subprocess, to be SIGKILLed and started again."""

    def __init__(self, url: str, runs_dir: Path, *extra: str, log: Path | None = None) -> None:
        self.log = log
        self.command = [
            sys.executable,
            "-m",
            "testing.bridge_process",
            "--nats-url",
            url,
            "--runs-dir",
            str(runs_dir),
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.lives: list[Life] = []

    def start(self, *extra: str) -> BridgeProcess:
        """Start it (``extra`` arguments for this start only)."""
        if self.process is not None and self.process.poll() is not None and self.lives:
            self.lives[-1].died = self.lives[-1].died or time.time()  # exited on its own
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        stderr = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [*self.command, *extra], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        self.lives.append(Life(self.process.pid))
        if self.log:
            stderr.close()  # type: ignore[union-attr]
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.lives[-1].died = time.time()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then its exit code."""
        self.send_sigterm()
        return self.wait(timeout_s)

    def send_sigterm(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout_s)

    @property
    def died(self) -> dict[int, float]:
        """pid -> when it died, for every start that did (SIGKILLed, or exited on its own)."""
        return {life.pid: life.died for life in self.lives if life.died is not None}
