"""The floors the bridge throughput bench measures the bridge against, all in this process on
one nats-server: (a) raw JetStream fetch + ack; (a2) that plus the JetStream writes the contract
asks of the bridge per request, each awaited, as many in flight as the bridge allows; (a3) the
same writes pipelined a fetch batch at a time; (a4) (a2) plus the writes of a run that has ended
by the watcher's first look. Each one's rate, and the CPU per message of this process and of
nats-server (``CpuMeter``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig

from bench.bridge_common import noop_bridge_settings

RAW_STREAM = "BENCH_RAW"


async def fill(
    js: JetStreamContext, messages: list[tuple[str, bytes, dict[str, str] | None]]
) -> None:
    """Publish every message and wait for all acks, 256 at a time (not measured)."""
    for start in range(0, len(messages), 256):
        chunk = messages[start : start + 256]
        await asyncio.gather(
            *(js.publish(subject, data, headers=headers) for subject, data, headers in chunk)
        )


async def raw_stream(js: JetStreamContext, count: int, payload: bytes) -> Any:
    """A fresh stream holding ``count`` copies of ``payload`` and a pull consumer on them, with
    the bridge's consumer settings that matter here."""
    settings = noop_bridge_settings("nats://unused")
    with contextlib.suppress(Exception):
        await js.delete_stream(RAW_STREAM)
    await js.add_stream(
        StreamConfig(name=RAW_STREAM, subjects=["bench.raw.>"], storage=StorageType.FILE)
    )
    await fill(js, [("bench.raw.trigger.document-ingestion", payload, None)] * count)
    return await js.pull_subscribe(
        "bench.raw.trigger.>",
        durable="bench-raw",
        stream=RAW_STREAM,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=60,
            max_ack_pending=max(1000, settings.bridge_max_in_flight * 4),  # as the bridge's
        ),
    )


@dataclass
class Baseline:
    rate: float  # messages/s
    client_cpu_us: float  # this process's CPU per message
    server_cpu_us: float  # nats-server's CPU per message


class CpuMeter:
    """CPU seconds used by this process and by nats-server since ``start``."""

    def __init__(self, server_pid: int) -> None:
        import psutil

        self._client, self._server = psutil.Process(), psutil.Process(server_pid)
        self._start = (0.0, 0.0)

    def _now(self) -> tuple[float, float]:
        client, server = self._client.cpu_times(), self._server.cpu_times()
        return client.user + client.system, server.user + server.system

    def start(self) -> None:
        self._start = self._now()

    def baseline(self, count: int, seconds: float) -> Baseline:
        client, server = (now - then for now, then in zip(self._now(), self._start, strict=True))
        return Baseline(count / seconds, client / count * 1e6, server / count * 1e6)


async def drained(nc: NATS, started: float) -> float:
    """Seconds since ``started`` once every ack has reached the server (checked)."""
    js = nc.jetstream()
    await nc.flush()  # acks go out in order, before the flush's PONG comes back
    elapsed = time.perf_counter() - started
    for _ in range(100):  # the server applies acks after it reads them: checked, not timed
        info = await js.consumer_info(RAW_STREAM, "bench-raw")
        if info.num_ack_pending == 0 and info.num_pending == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"acks missing after the drain: {info}")
    await js.delete_stream(RAW_STREAM)
    return elapsed


async def raw_consume_ack(nc: NATS, count: int, payload: bytes, cpu: CpuMeter) -> Baseline:
    """(a): messages/s of fetch + ack over ``count`` messages already stored."""
    sub = await raw_stream(nc.jetstream(), count, payload)
    batch = noop_bridge_settings("nats://unused").bridge_fetch_batch
    done = 0
    cpu.start()
    started = time.perf_counter()
    while done < count:
        messages = await sub.fetch(batch, timeout=2.0, heartbeat=0.5)  # as the bridge fetches
        for message in messages:
            await message.ack()
        done += len(messages)
    return cpu.baseline(count, await drained(nc, started))


async def floor_bucket(js: JetStreamContext, bucket: str) -> Any:
    """A fresh KV bucket as the bridge's claims bucket is made (file storage, one revision)."""
    from nats.js.api import KeyValueConfig

    with contextlib.suppress(Exception):
        await js.delete_key_value(bucket)
    return await js.create_key_value(
        KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE)
    )


async def contract_floor(
    nc: NATS, count: int, payload: bytes, cpu: CpuMeter, *, run_ends: bool = False
) -> Baseline:
    """(a2): (a) plus, per message, the JetStream writes the contract asks of the bridge, each
    awaited in the bridge's order: KV create, ``accepted``, KV update, ``submitted``; then ack.
    As many messages in flight as the bridge allows; no decoding, validation or engine call.

    (a4) with ``run_ends``: also the writes of a run that has ended by the watcher's first look,
    as the no-op engine's have (KV update, ``running``, KV update, ``succeeded``)."""
    settings = noop_bridge_settings("nats://unused")
    js = nc.jetstream()
    sub = await raw_stream(js, count, payload)
    kv = await floor_bucket(js, "bench_floor")
    slots = asyncio.Semaphore(settings.bridge_max_in_flight)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(message: Any) -> None:
        try:
            key = f"k{message.metadata.sequence.stream}"
            revision = await kv.create(key, payload)
            await js.publish(f"bench.raw.status.{key}", payload)
            revision = await kv.update(key, payload, last=revision)
            await js.publish(f"bench.raw.status.{key}", payload)
            await message.ack()
            for _ in range(2 if run_ends else 0):
                revision = await kv.update(key, payload, last=revision)
                await js.publish(f"bench.raw.status.{key}", payload)
        finally:
            slots.release()

    done = 0
    cpu.start()
    started = time.perf_counter()
    while done < count:
        messages = await sub.fetch(settings.bridge_fetch_batch, timeout=2.0, heartbeat=0.5)
        for message in messages:
            await slots.acquire()
            task = asyncio.create_task(handle(message))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        done += len(messages)
    await asyncio.gather(*tasks)
    result = cpu.baseline(count, await drained(nc, started))
    await js.delete_key_value("bench_floor")
    return result


async def pipelined_floor(nc: NATS, count: int, payload: bytes, cpu: CpuMeter) -> Baseline:
    """(a3): (a2)'s writes, a fetch batch at a time, each step's writes sent together with
    ``publish_async`` and awaited together: KV creates, then both status events, then KV
    updates, then the acks. Nothing a bridge must also do (decode, validate, submit)."""
    js = nc.jetstream()
    sub = await raw_stream(js, count, payload)
    await floor_bucket(js, "bench_floor_pipelined")
    kv_prefix = "$KV.bench_floor_pipelined."
    create = {"Nats-Expected-Last-Subject-Sequence": "0"}  # what KeyValue.create sends

    async def each(writes: list[tuple[str, dict[str, str] | None]]) -> None:
        futures = [await js.publish_async(s, payload, headers=h) for s, h in writes]
        await asyncio.wait_for(asyncio.gather(*futures), 10)

    done = 0
    batch = noop_bridge_settings("nats://unused").bridge_max_in_flight
    cpu.start()
    started = time.perf_counter()
    while done < count:
        messages = await sub.fetch(batch, timeout=2.0, heartbeat=0.5)
        keys = [f"k{message.metadata.sequence.stream}" for message in messages]
        await each([(kv_prefix + key, dict(create)) for key in keys])
        await each([(f"bench.raw.status.{key}", None) for key in keys for _ in range(2)])
        await each([(kv_prefix + key, None) for key in keys])
        for message in messages:
            await message.ack()
        done += len(messages)
    result = cpu.baseline(count, await drained(nc, started))
    await js.delete_key_value("bench_floor_pipelined")
    return result
