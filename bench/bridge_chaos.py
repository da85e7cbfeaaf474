"""Bridge chaos benchmark: `python -m bench.bridge_chaos [--requests 2000]`.

Publishes N requests at a steady rate (5 % malformed, in seven kinds; 10 % of the valid ones
published again later as new stream messages, without the dedup header; 5 % again inside the
duplicate window with ``Nats-Msg-Id``), while the NATS server is killed and started again three
times (same port and store) and the bridge process (``testing.bridge_process``, whose
recording engine fails 20 % of submissions with a transient 503) is SIGKILLed twice and started
again. A publish is retried until JetStream acks it; only acked messages count as published.

Then it waits until every valid request has a final status (and a run), every malformed message a
``rejected`` status or a dead letter, and the bridge's consumer has nothing pending; and prints
requests, runs created, lost, duplicate runs, submissions (every ``submit`` call, from the recording
engine's log, so that its adoption by run name hides no double submission), rejected and dead
letters. Exits 1 when a request was lost, a run was duplicated or submitted twice, or a malformed
message was not rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bridge_chaos_plan import MALFORMED_KINDS, Planned, plan
from bench.bridge_chaos_report import Seen, report
from bench.bridge_common import StreamReader, connect, consumer_idle, publish_acked, say


@dataclass
class Chaos:
    """The planned faults, and the bridge exits nobody planned (each restarted, as Kubernetes
    restarts a crashed pod)."""

    bridge: Any
    started: float
    events: list[str] = field(default_factory=list)
    nats_restarts: int = 0
    bridge_kills: int = 0
    crashes: list[str] = field(default_factory=list)
    _planned: bool = False

    def at(self) -> float:
        return time.monotonic() - self.started

    async def run(self, server: Any, duration: float, down_s: float) -> None:
        """NATS restarted at 15, 45 and 75 % of the publishing time; the bridge killed at 30 and
        60 %."""
        plan = [(0.15, "nats"), (0.30, "bridge"), (0.45, "nats"), (0.60, "bridge"), (0.75, "nats")]
        for fraction, what in plan:
            await asyncio.sleep(max(0.0, self.started + fraction * duration - time.monotonic()))
            at = self.at()
            if what == "nats":
                await asyncio.to_thread(server.kill)
                await asyncio.sleep(down_s)
                await asyncio.to_thread(server.start)
                self.nats_restarts += 1
                self.events.append(f"NATS killed at {at:.1f} s, started {down_s:g} s later")
            else:
                self._planned = True
                await asyncio.to_thread(self.bridge.kill)
                await asyncio.sleep(down_s)
                await asyncio.to_thread(self.bridge.start)
                self._planned = False
                self.bridge_kills += 1
                self.events.append(f"bridge SIGKILLed at {at:.1f} s, started {down_s:g} s later")
            say(self.events[-1])

    async def supervise(self, stop: asyncio.Event) -> None:
        """Start the bridge again whenever it exits on its own."""
        while not stop.is_set():
            process = self.bridge.process
            if not self._planned and process is not None and process.poll() is not None:
                self.crashes.append(f"exit code {process.returncode} at {self.at():.1f} s")
                say(f"the bridge exited on its own ({self.crashes[-1]}); starting it again")
                await asyncio.to_thread(self.bridge.start)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


def crash_summaries(log_path: Path) -> list[str]:
    """For each traceback in the bridge's log: the last exception of the chain and the bridge/
    frames of its traceback, outermost first."""
    from bench.bridge_common import REPO

    package = f"{REPO / 'bridge'}/"
    summaries: list[str] = []
    frames: list[str] = []
    pending = ""
    for line in [*log_path.read_text(errors="replace").splitlines(), "{"]:
        if line.startswith(("During handling", "The above exception")):
            pending = ""  # the chain goes on
        elif line.startswith('  File "') and package in line:
            where, _, function = line.split(package, 1)[1].partition(", in ")
            frames.append(where.replace('", line ', ":") + " " + function)
        elif line.startswith(("Traceback", "{")):
            if pending:
                summaries.append(pending)
                pending = ""
            frames = []
        elif line[:1] not in ("", " "):
            pending = f"{line.strip()} (in bridge/: {' > '.join(frames) or 'no frame'})"
    return summaries


async def publish_all(js: Any, messages: list[Planned], duration: float, started: float) -> None:
    """Each message at its slot of a steady rate (late ones go at once), until acked."""
    every = duration / len(messages)
    for n, item in enumerate(messages):
        await asyncio.sleep(max(0.0, started + n * every - time.monotonic()))
        ack, item.retries = await publish_acked(js, item.subject, item.data, item.headers)
        item.seq, item.duplicate = ack.seq, bool(ack.duplicate)
        if n and n % 500 == 0:
            say(f"{n} published at {time.monotonic() - started:.1f} s")


async def settle(js: Any, messages: list[Planned], seen: Seen, timeout_s: float) -> float:
    """Wait for every outcome and an idle consumer; seconds waited (timeout: the time so far)."""
    valid = {m.request_id for m in messages if m.kind == "valid"}
    malformed = [m for m in messages if m.kind in MALFORMED_KINDS]
    started = time.monotonic()
    last_said = started
    while True:
        unfinished = sum(1 for rid in valid if rid is None or seen.final(rid) is None)
        unrejected = sum(1 for m in malformed if not seen.rejected(m))
        if unfinished == 0 and unrejected == 0 and await consumer_idle(js):
            # One more look after a pause: nothing may be left in flight.
            await asyncio.sleep(1.0)
            if await consumer_idle(js):
                return time.monotonic() - started
        waited = time.monotonic() - started
        if waited > timeout_s:
            say(f"gave up waiting after {waited:.0f} s")
            return waited
        if time.monotonic() - last_said > 10:
            say(f"waiting: {unfinished} without a final status, {unrejected} not rejected")
            last_said = time.monotonic()
        await asyncio.sleep(0.5)


def bridge_process(url: str, runs_dir: Path, log_path: Path, *extra: str) -> Any:
    """``testing.bridge_process`` (kill, start again), its stderr appended to ``log_path``."""
    from testing.bridge_harness import BridgeProcess

    return BridgeProcess(url, runs_dir, *extra, log=log_path)


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from testing.nats_server import NatsServer

    messages = plan(args.requests, 0.05, args.seed)
    runs_dir = tmp / "runs"
    server = NatsServer(tmp / "nats").start()
    bridge = bridge_process(
        server.url,
        runs_dir,
        tmp / "bridge.log",
        *("--fail-rate", str(args.fail_rate), "--idempotent", "--log-level", args.log_level),
    ).start()
    chaos = Chaos(bridge, time.monotonic())
    stop = asyncio.Event()
    try:
        nc = await connect(server.url)
        js = nc.jetstream()
        deadline = time.monotonic() + 60
        while not await consumer_idle(js):  # the bridge made the stream and its consumer
            if time.monotonic() > deadline:
                raise RuntimeError("the bridge did not create its stream and consumer in 60 s")
            await asyncio.sleep(0.2)
        say(f"publishing {len(messages)} messages over {args.duration:g} s")
        chaos.started = started = time.monotonic()
        supervisor = asyncio.create_task(chaos.supervise(stop))
        await asyncio.gather(
            publish_all(js, messages, args.duration, started),
            chaos.run(server, args.duration, args.down_s),
        )
        published_s = time.monotonic() - started
        seen = Seen()
        readers = [
            await StreamReader("ai.pipeline.status.>", seen.status).start(js),
            await StreamReader("ai.pipeline.deadletter.>", seen.dead_letter).start(js),
        ]
        settled_s = await settle(js, messages, seen, args.timeout)
        stop.set()
        await supervisor
        for reader in readers:
            await reader.stop()
        await nc.close()
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            bridge.terminate()
        bridge.kill()
        server.stop()
    from testing.recording_engine import runs_by_name, submissions

    return {
        "messages": messages,
        "seen": seen,
        "runs": runs_by_name(runs_dir),
        "submissions": submissions(runs_dir),
        "died": bridge.died,
        "chaos": chaos,
        "tracebacks": crash_summaries(tmp / "bridge.log"),
        "published_s": published_s,
        "settled_s": settled_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="valid + malformed")
    parser.add_argument("--duration", type=float, default=60.0, help="publishing time, s")
    parser.add_argument("--down-s", type=float, default=2.0, help="outage per restart, s")
    parser.add_argument("--fail-rate", type=float, default=0.2, help="transient engine failures")
    parser.add_argument("--timeout", type=float, default=300.0, help="to settle, s")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--log-level", default="WARNING", help="the bridge's")
    parser.add_argument(
        "--keep", type=Path, help="a folder to keep the NATS store, runs and logs in"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bridge-chaos-") as tmp:
        work = args.keep or Path(tmp)
        result = asyncio.run(measure(args, work))
    if not report(args, result):
        sys.exit(1)


if __name__ == "__main__":
    main()
