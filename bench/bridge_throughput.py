"""Bridge throughput benchmark: `python -m bench.bridge_throughput [--strict]`.

Prints, from one run on one nats-server (file storage), side by side:
- (a) raw JetStream consume+ack/s: N messages already in a stream, drained by a pull consumer
  fetching batches (the bridge's batch size and fetch call) and acking each message;
- (a2) the same drain plus the JetStream writes the contract asks for per request (KV create, two
  status events, KV update), each awaited, as many requests in flight as the bridge allows;
- (a3) the same writes pipelined a fetch batch at a time (``publish_async``, one wait per step):
  the most a client of this library gets through them, with no decoding, validation or engine;
- (a4) (a2) plus the writes of a run that has ended by the watcher's first look (KV update,
  ``running``, KV update, ``succeeded``), as the no-op engine's runs have during (b);
- the CPU per message of this process and of nats-server in (a) to (a4): what the
  contract's writes cost the server itself, whatever the client;
- (b) the bridge's sustained requests/s: N valid requests already in AI_PIPELINE, drained by the
  bridge on an engine that does nothing, from the first ``accepted`` status to the last
  ``submitted`` one (the bridge's own timestamps); (b)/(a) (target >= 0.5), (b) over each floor,
  and the bridge's CPU per request;
- (c) p50/p99 latency from publish to the ``submitted`` status event, requests paced at 200/s for
  about 10 s, received by a core NATS subscription on ``ai.pipeline.status.>`` (target p99 <= 25
  ms).

The bridge is ``bridge.main.serve`` in a process of its own (``python -m bench.bridge_common``),
with the production defaults. ``--strict`` exits non-zero when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgpack
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from bench.bridge_common import (
    CONSUMER,
    STREAM,
    NoopBridgeProcess,
    Stored,
    StreamReader,
    connect,
    consumer_idle,
    noop_bridge_settings,
    print_table,
    say,
)
from bench.bridge_floors import (
    Baseline,
    CpuMeter,
    contract_floor,
    fill,
    pipelined_floor,
    raw_consume_ack,
)

TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0


def request_message(tag: str, index: int) -> tuple[str, str, bytes]:
    """(request_id, subject, MessagePack) of one valid request."""
    from bridge.messages import PipelineRequest, trigger_subject

    request = PipelineRequest(
        request_id=f"{tag}-{index:06d}",
        pipeline="document-ingestion",
        engine="argo",
        parameters={"source": f"s3://bench/docs/{index:06d}"},
    )
    return request.request_id, trigger_subject(request.pipeline), request.encode()


def _at(data: bytes) -> tuple[str, str, float]:
    status = msgpack.unpackb(data)
    at = datetime.fromisoformat(status["at"].replace("Z", "+00:00")).timestamp()
    return status["request_id"], status["state"], at


@dataclass
class Drain:
    rate: float  # requests/s, first accepted -> last submitted
    wall_rate: float  # requests/s, first delivery -> consumer idle (polled)
    bridge_cpu_us: float  # the bridge process's CPU per request over that wall time
    bridge_cpu_share: float  # of one core
    nats_cpu_us: float  # nats-server's CPU per request over that wall time
    nats_cpu_share: float


def _cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class _Deadline:
    """Fails the drain when the bridge exits or takes too long, with the tail of its log."""

    def __init__(self, bridge: NoopBridgeProcess, seconds: float) -> None:
        self.bridge = bridge
        self.deadline = time.perf_counter() + seconds

    def check(self) -> None:
        assert self.bridge.process is not None
        if self.bridge.process.poll() is not None:
            raise RuntimeError(f"the bridge exited:\n{self.bridge.log_tail()}")
        if time.perf_counter() > self.deadline:
            raise RuntimeError(f"the bridge did not drain the stream:\n{self.bridge.log_tail()}")


async def bridge_drain(
    js: JetStreamContext, server: Any, count: int, log_path: Path
) -> tuple[Drain, NoopBridgeProcess]:
    """(b): the bridge draining ``count`` stored requests. Returns the bridge, still running."""
    from bridge.service import stream_config

    await js.add_stream(stream_config(STREAM))
    requests = [request_message("drain", i) for i in range(count)]
    await fill(js, [(s, d, {"Nats-Msg-Id": rid}) for rid, s, d in requests])
    bridge = NoopBridgeProcess(server.url, log_path).start()
    assert bridge.process is not None and server.process is not None
    deadline = _Deadline(bridge, 300)
    while True:  # start the clocks at its first delivery, after its imports and connecting
        deadline.check()
        with contextlib.suppress(Exception):
            info = await js.consumer_info(STREAM, CONSUMER, timeout=1.0)
            if info.delivered.consumer_seq > 0:
                break
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    bridge_cpu, nats_cpu = _cpu(bridge.process.pid), _cpu(server.process.pid)
    while not await consumer_idle(js):
        deadline.check()
        await asyncio.sleep(0.1)
    wall = time.perf_counter() - started
    bridge_cpu = _cpu(bridge.process.pid) - bridge_cpu
    nats_cpu = _cpu(server.process.pid) - nats_cpu

    accepted, submitted = await status_times(js, {rid for rid, _, _ in requests})
    if not len(accepted) == len(submitted) == count:
        raise RuntimeError(f"{count} requests: {len(submitted)} submitted")
    drain = Drain(
        rate=count / (max(submitted.values()) - min(accepted.values())),
        wall_rate=count / wall,
        bridge_cpu_us=bridge_cpu / count * 1e6,
        bridge_cpu_share=bridge_cpu / wall,
        nats_cpu_us=nats_cpu / count * 1e6,
        nats_cpu_share=nats_cpu / wall,
    )
    return drain, bridge


async def status_times(
    js: JetStreamContext, ids: set[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """When each request was ``accepted`` and ``submitted`` (the bridge's own timestamps), once
    every one of them has succeeded. Read once, after the drain, so the reader does not compete
    with it; waiting for the watcher to end the runs lets (c) start on a quiet bridge."""
    accepted: dict[str, float] = {}
    submitted: dict[str, float] = {}
    succeeded: set[str] = set()
    all_done = asyncio.Event()

    def seen(item: Stored) -> None:
        rid, state, at = _at(item.data)
        if rid not in ids:
            return
        if state == "accepted":
            accepted.setdefault(rid, at)
        elif state == "submitted":
            submitted.setdefault(rid, at)
        elif state == "succeeded":
            succeeded.add(rid)
        if len(succeeded) == len(ids):
            all_done.set()

    reader = await StreamReader("ai.pipeline.status.>", seen).start(js)
    try:
        await asyncio.wait_for(all_done.wait(), 120)
    finally:
        await reader.stop()
    return accepted, submitted


async def paced_latency(nc: NATS, rate: float, seconds: float) -> tuple[list[float], int]:
    """(c): publish-to-``submitted`` latencies (s) at ``rate`` requests/s; and how many missed."""
    count = int(rate * seconds)
    requests = [request_message("paced", i) for i in range(count)]
    sent: dict[str, float] = {}
    latencies: dict[str, float] = {}
    every = asyncio.Event()

    async def on_status(msg: Any) -> None:
        status = msgpack.unpackb(msg.data)
        rid = status.get("request_id")
        if status.get("state") == "submitted" and rid in sent and rid not in latencies:
            latencies[rid] = time.perf_counter() - sent[rid]
            if len(latencies) == count:
                every.set()

    js = nc.jetstream()
    sub = await nc.subscribe("ai.pipeline.status.>", cb=on_status)
    publishes = []
    started = time.perf_counter()
    for i, (rid, subject, data) in enumerate(requests):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent[rid] = time.perf_counter()
        publishes.append(
            asyncio.create_task(js.publish(subject, data, headers={"Nats-Msg-Id": rid}))
        )
    await asyncio.gather(*publishes)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(every.wait(), 30)
    await sub.unsubscribe()
    return sorted(latencies.values()), count - len(latencies)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    rank = max(1, round(fraction * len(values) + 0.5))
    return values[min(len(values), rank) - 1]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    from bridge.messages import PipelineRequest
    from testing.nats_server import NatsServer

    payload = PipelineRequest(
        request_id="raw-000000",
        pipeline="document-ingestion",
        engine="argo",
        parameters={"source": "s3://bench/docs/000000"},
    ).encode()
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as tmp:
        work = args.keep or Path(tmp)
        server = NatsServer(work / "nats").start()
        bridge: NoopBridgeProcess | None = None
        try:
            nc = await connect(server.url)
            assert server.process is not None
            cpu = CpuMeter(server.process.pid)
            try:
                js = nc.jetstream()
                raw = await raw_consume_ack(nc, args.raw_messages, payload, cpu)
                say(f"(a) raw consume+ack: {raw.rate:.0f} messages/s")
                floor = await contract_floor(nc, args.requests, payload, cpu)
                say(f"(a2) consume + the contract's JetStream writes: {floor.rate:.0f} messages/s")
                pipelined = await pipelined_floor(nc, args.requests, payload, cpu)
                say(f"(a3) the same writes pipelined: {pipelined.rate:.0f} messages/s")
                ended = await contract_floor(nc, args.requests, payload, cpu, run_ends=True)
                say(f"(a4) and the writes of the run's end: {ended.rate:.0f} messages/s")
                drain, bridge = await bridge_drain(js, server, args.requests, work / "bridge.log")
                say(f"(b) bridge: {drain.rate:.0f} requests/s")
                latencies, missed = await paced_latency(nc, args.rate, args.seconds)
            finally:
                await nc.close()
        finally:
            if bridge is not None:
                bridge.stop()
            server.stop()
    return {
        "raw": raw,
        "floor": floor,
        "pipelined": pipelined,
        "ended": ended,
        "drain": drain,
        "latencies": latencies,
        "missed": missed,
        "payload_bytes": len(payload),
    }


def report(
    args: argparse.Namespace, result: dict[str, Any]
) -> tuple[list[tuple[str, str, str]], list[str], bool]:
    """The table's rows, its notes, and whether a target was missed."""
    drain: Drain = result["drain"]
    raw: Baseline = result["raw"]
    ratio = drain.rate / raw.rate
    latencies = result["latencies"]
    p50, p99, worst = (
        (percentile(latencies, 0.50) * 1e3, percentile(latencies, 0.99) * 1e3, latencies[-1] * 1e3)
        if latencies
        else (float("nan"),) * 3
    )
    rows = [
        *floor_rows(args, result),
        (
            f"(c) publish -> submitted p50, {args.rate:g}/s for {args.seconds:g} s",
            f"{p50:.1f} ms",
            "",
        ),
        ("(c) publish -> submitted p99", f"{p99:.1f} ms", f"<= {TARGET_P99_MS:g} ms"),
        ("(c) publish -> submitted max", f"{worst:.1f} ms", ""),
        (
            f"(c) no submitted status within 30 s (of {len(latencies) + result['missed']})",
            str(result["missed"]),
            "0",
        ),
    ]
    missed = ratio < TARGET_RATIO or not p99 <= TARGET_P99_MS or result["missed"] > 0
    return rows, notes(result), missed


def floor_rows(args: argparse.Namespace, result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The rows of (a) to (a4) and (b): rates, CPU, and (b) over each floor."""
    drain: Drain = result["drain"]
    raw: Baseline = result["raw"]
    floors: list[tuple[str, str, Baseline]] = [
        ("a2", "consume + 4 awaited JetStream writes + ack/s", result["floor"]),
        ("a3", "consume + the same writes pipelined + ack/s", result["pipelined"]),
        ("a4", "(a2) + the 4 writes of the run's end/s", result["ended"]),
    ]
    per_message = "    CPU per message: this client / nats-server"
    rows = [
        (f"(a) raw JetStream consume+ack/s, {args.raw_messages} msgs", f"{raw.rate:.0f}", ""),
        (per_message, f"{raw.client_cpu_us:.0f} / {raw.server_cpu_us:.0f} µs", ""),
    ]
    for tag, label, base in floors:
        rows.append((f"({tag}) {label}, {args.requests} msgs", f"{base.rate:.0f}", ""))
        rows.append((per_message, f"{base.client_cpu_us:.0f} / {base.server_cpu_us:.0f} µs", ""))
    return [
        *rows,
        (f"(b) bridge requests/s, {args.requests} requests", f"{drain.rate:.0f}", ""),
        (
            "    CPU per request: bridge / nats-server",
            f"{drain.bridge_cpu_us:.0f} / {drain.nats_cpu_us:.0f} µs",
            "",
        ),
        ("(b) / (a)", f"{drain.rate / raw.rate:.3f}", f">= {TARGET_RATIO}"),
        *((f"({tag}) / (a)", f"{base.rate / raw.rate:.3f}", "") for tag, _, base in floors),
        *((f"(b) / ({tag})", f"{drain.rate / base.rate:.3f}", "") for tag, _, base in floors),
        (
            "nats-server CPU per message, (a2) / (a)",
            f"{floors[0][2].server_cpu_us / raw.server_cpu_us:.1f}x",
            "",
        ),
        (
            "(b) CPU busy: bridge / nats-server",
            f"{drain.bridge_cpu_share:.0%} / {drain.nats_cpu_share:.0%}",
            "",
        ),
    ]


def notes(result: dict[str, Any]) -> list[str]:
    settings = noop_bridge_settings("nats://unused")
    drain: Drain = result["drain"]
    return [
        "The bridge: bridge.main.serve in a subprocess (python -m bench.bridge_common) with the "
        f"production defaults (fetch batch {settings.bridge_fetch_batch}, "
        f"{settings.bridge_max_in_flight} in flight, {settings.bridge_workers} submit workers, "
        f"watcher poll {settings.bridge_poll_s:g} s) on a no-op engine: a submission returns at "
        "once and the run has already succeeded, so the watcher also saves and publishes running "
        "and succeeded for each request (4 more JetStream writes) while (b) runs.",
        "(a) drains a stream with the bridge's fetch call and acks each message; (a2) also makes, "
        "per message and in the bridge's order, the JetStream writes the contract asks for (KV "
        "create, accepted, KV update, submitted), as many in flight as the bridge; (a3) makes "
        "the same writes a batch at a time with publish_async; (a4) adds to (a2) the writes of "
        "a run that ended before the watcher's first look (KV update, running, KV update, "
        "succeeded), as (b) has them; all in this process, "
        f"{result['payload_bytes']}-byte request payloads, file storage.",
        "(b) runs from the first accepted status to the last submitted one (the bridge's own "
        f"timestamps); {drain.wall_rate:.0f}/s from first delivery to an idle consumer (polled). "
        "(c) is measured on the same bridge, once (b)'s runs have all ended.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-messages", type=int, default=50_000, help="for (a)")
    parser.add_argument("--requests", type=int, default=30_000, help="for (a2)-(a4) and (b)")
    parser.add_argument("--rate", type=float, default=200.0, help="paced requests/s for (c)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long (c) publishes")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", type=Path, help="a folder to keep the NATS store and logs in")
    args = parser.parse_args()

    rows, notes, missed = report(args, asyncio.run(measure(args)))
    print_table("Bridge throughput benchmark", rows, notes)
    if args.strict and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
