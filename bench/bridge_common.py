"""What the bridge benches share: a NATS client that rides out server restarts, a publish that
retries until JetStream acks it, a reader of everything a stream holds on a subject, a no-op
engine and a bridge process on it (``python -m bench.bridge_common --nats-url URL``), and the
table they print.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, PubAck

REPO = Path(__file__).resolve().parent.parent

STREAM = "AI_PIPELINE"  # the bridge's defaults (components.settings)
CONSUMER = "llmw-bridge"


async def connect(url: str) -> NATS:
    """A client that reconnects forever, quickly: the benches restart the server under it."""

    async def quiet(*_args: Any) -> None:  # disconnects are expected here: no tracebacks
        return None

    return await nats.connect(
        servers=[url],
        allow_reconnect=True,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.2,
        connect_timeout=2,
        error_cb=quiet,
        disconnected_cb=quiet,
        reconnected_cb=quiet,
    )


async def publish_acked(
    js: JetStreamContext,
    subject: str,
    data: bytes,
    headers: dict[str, str] | None = None,
    give_up_s: float = 120.0,
) -> tuple[PubAck, int]:
    """Publish until JetStream acks it (through server restarts); the ack and the retries taken.

    A retry after a lost ack stores a second copy unless ``headers`` carry a ``Nats-Msg-Id``.
    """
    deadline = time.monotonic() + give_up_s
    retries = 0
    while True:
        try:
            ack = await js.publish(subject, data, headers=headers, timeout=2.0, stream=STREAM)
            return ack, retries
        except asyncio.CancelledError:
            raise
        except Exception:  # server away, JetStream not ready yet, no ack in time
            if time.monotonic() > deadline:
                raise
            retries += 1
            await asyncio.sleep(0.1)


@dataclass
class Stored:
    subject: str
    data: bytes
    headers: dict[str, str]


class StreamReader:
    """Everything the stream holds on ``subject``, from the first message on, as it arrives
    (an ordered consumer, deliver all); ``on_message`` sees each one."""

    def __init__(self, subject: str, on_message: Callable[[Stored], None] | None = None) -> None:
        self.subject = subject
        self.messages: list[Stored] = []
        self.on_message = on_message
        self._sub: Any = None

    async def start(self, js: JetStreamContext) -> StreamReader:
        async def handle(msg: Msg) -> None:
            item = Stored(msg.subject, msg.data, dict(msg.headers or {}))
            self.messages.append(item)
            if self.on_message is not None:
                self.on_message(item)

        self._sub = await js.subscribe(
            self.subject,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=handle,
            pending_msgs_limit=1_000_000,
        )
        return self

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


async def consumer_idle(js: JetStreamContext) -> bool:
    """The bridge's consumer has nothing left to deliver and nothing delivered unacked."""
    try:
        info = await js.consumer_info(STREAM, CONSUMER, timeout=2.0)
    except Exception:
        return False
    return info.num_pending == 0 and info.num_ack_pending == 0


# --- a no-op engine and a bridge process on it ---------------------------------------------------


class NoopEngine:
    """Does nothing: a submission returns at once, and the run has already succeeded."""

    blocking = False

    def __init__(self, name: str) -> None:
        self.name = name

    def submit(
        self, pipeline: str, params: dict[str, Any], run_name: str, experiment: str | None
    ) -> Any:
        from components.orchestration.runs import SubmittedRun

        return SubmittedRun(run_id=run_name, url=f"noop://{run_name}", state="Pending")

    def status(self, run_id: str) -> Any:
        from components.orchestration.runs import RunStatus

        return RunStatus(run_id=run_id, state="Succeeded", url=f"noop://{run_id}")

    def close(self) -> None:
        return None


def noop_bridge_settings(url: str) -> Any:
    """Production defaults (fetch batch, in-flight cap, workers, watcher poll), local ports."""
    from components.settings import Settings

    return Settings(nats_url=url, bridge_http_host="127.0.0.1", bridge_http_port=0)


class NoopBridgeProcess:
    """``python -m bench.bridge_common``: the bridge (``bridge.main.serve``) on the no-op engine,
    in a process of its own so it has its own interpreter and GIL."""

    def __init__(self, url: str, log_path: Path) -> None:
        self.command = [sys.executable, "-m", "bench.bridge_common", "--nats-url", url]
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NoopBridgeProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def say(line: str) -> None:
    """Progress, on stderr: the table goes to stdout."""
    print(line, file=sys.stderr, flush=True)


def print_table(title: str, rows: list[tuple[str, str, str]], notes: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("figure", "measured", "target"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # a log or a pipe: wide enough that the rows stay on one line
        console.width = 120
    console.print(table)
    for note in notes:
        console.print(note, highlight=False)


def main() -> None:
    parser = argparse.ArgumentParser(description="the bridge on a no-op engine")
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()
    from bridge.engines import EngineSet
    from bridge.main import serve

    settings = noop_bridge_settings(args.nats_url)
    engines = EngineSet(settings, factory=lambda name, _settings: NoopEngine(name))
    serve(settings, engines, log_level=args.log_level)


if __name__ == "__main__":
    main()
