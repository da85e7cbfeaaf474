"""Driving a bridge in tests and benchmarks: in a thread or a killable process, publishing
requests and reading status events and dead letters back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import nats
from nats.js.api import DeliverPolicy

from bridge.engines import EngineSet
from bridge.messages import PipelineRequest, PipelineStatus, RunState, trigger_subject
from bridge.metrics import BridgeMetrics
from bridge.service import Bridge
from components.settings import Settings

REPO = Path(__file__).resolve().parents[1]


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
        engine=engine,  # type: ignore[arg-type]
        parameters={"source": "examples/docs", **parameters},
    )


def send(url: str, req: PipelineRequest, msg_id: bool = True) -> None:
    publish(url, req.encode(), req.pipeline, msg_id=req.request_id if msg_id else None)


async def _stream_messages(
    url: str, subject: str, limit: float
) -> list[tuple[bytes, dict[str, str]]]:
    nc = await nats.connect(url)
    found: list[tuple[bytes, dict[str, str]]] = []
    try:
        sub = await nc.jetstream().subscribe(
            subject, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        while True:
            try:
                msg = await sub.next_msg(timeout=limit)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            found.append((msg.data, dict(msg.headers or {})))
    finally:
        await nc.close()
    return found


def statuses(url: str, request_id: str, quiet_s: float = 0.3) -> list[PipelineStatus]:
    """Every status event published for ``request_id`` so far, in order."""
    raw = asyncio.run(_stream_messages(url, f"ai.pipeline.status.{request_id}", quiet_s))
    return [PipelineStatus.decode(data) for data, _ in raw]


def dead_letters(url: str, quiet_s: float = 0.3) -> list[tuple[bytes, dict[str, str]]]:
    return asyncio.run(_stream_messages(url, "ai.pipeline.deadletter.>", quiet_s))


def wait_for_state(
    url: str, request_id: str, state: RunState, timeout_s: float = 20.0
) -> list[PipelineStatus]:
    """The request's events once one of them has ``state``."""
    found: list[PipelineStatus] = []

    def reached() -> bool:
        nonlocal found
        found = statuses(url, request_id, quiet_s=0.05)
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
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


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

    def start(self) -> BridgeProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        stderr = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        if self.log:
            stderr.close()  # type: ignore[union-attr]
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)
