"""Bridge chaos benchmark: `python -m bench.bridge_chaos [--requests 2000]`.

Publishes N requests at a steady rate (5 % malformed, in seven kinds; 10 % of the valid ones
published again later as new stream messages, without the dedup header; 5 % again inside the
duplicate window with ``Nats-Msg-Id``), while the NATS server is killed and started again three
times (same port and store) and the bridge process (``testing.bridge_process``, whose
recording engine fails 20 % of submissions with a transient 503) is SIGKILLed twice and started
again. A publish is retried until JetStream acks it; only acked messages count as published.

Then it waits until every valid request has a final status (and a run), every malformed message a
``rejected`` status or a dead letter, and the bridge's consumer has nothing pending; and prints
requests, runs created, lost, duplicate runs, rejected and dead letters. Exits 1 when a request
was lost, a run was duplicated, or a malformed message was not rejected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from bench.bridge_common import (
    Stored,
    StreamReader,
    connect,
    consumer_idle,
    print_table,
    publish_acked,
)

PIPELINE = "document-ingestion"
MALFORMED_KINDS = (
    "undecodable",  # garbage bytes
    "not_a_map",  # MessagePack, but a list
    "missing_request_id",
    "unknown_pipeline",
    "invalid_parameters",
    "forbidden_field",  # asks for an image
    "too_large",  # over the 64 KiB limit
)
STATE_ORDER = {"accepted": 0, "submitted": 1, "running": 2, "succeeded": 3, "failed": 3}


@dataclass
class Planned:
    kind: str  # "valid", "republished", "dedup_header", or a malformed kind
    subject: str
    data: bytes
    headers: dict[str, str] | None
    request_id: str | None
    seq: int = 0  # the stream sequence JetStream acked
    duplicate: bool = False  # JetStream dropped it as a duplicate (Nats-Msg-Id)
    retries: int = 0


def valid_request(request_id: str, index: int) -> tuple[str, bytes]:
    from bridge.messages import PipelineRequest, trigger_subject

    engine = ("argo", "kfp", None)[index % 3]  # None: the pipeline's default engine
    request = PipelineRequest(
        request_id=request_id,
        pipeline=PIPELINE,
        engine=engine,
        parameters={"source": f"s3://chaos/docs/{index:05d}", "collection": "chaos"},
    )
    return trigger_subject(PIPELINE), request.encode()


def malformed_message(kind: str, index: int) -> tuple[str, bytes, str | None]:
    """(subject, bytes, the request_id it carries, if any) of one malformed message."""
    from bridge.messages import pack as _pack
    from bridge.messages import trigger_subject

    request_id = f"bad-{index:05d}"
    good = {"v": 1, "request_id": request_id, "pipeline": PIPELINE}
    params = {"source": f"s3://chaos/bad/{index:05d}"}
    subject = trigger_subject(PIPELINE)
    if kind == "undecodable":
        return subject, b"\xc1" + f"not messagepack {index}".encode(), None
    if kind == "not_a_map":
        return subject, _pack([request_id, PIPELINE, params]), None
    if kind == "missing_request_id":
        return subject, _pack({"pipeline": PIPELINE, "parameters": params}), None
    if kind == "unknown_pipeline":
        body = {**good, "pipeline": "no-such-pipeline", "parameters": params}
        return trigger_subject("no-such-pipeline"), _pack(body), request_id
    if kind == "invalid_parameters":
        body = {**good, "parameters": {"collection": "not a valid name!"}}  # and no source
        return subject, _pack(body), request_id
    if kind == "forbidden_field":
        body = {**good, "parameters": {**params, "image": "evil/miner:latest"}}
        return subject, _pack(body), request_id
    if kind == "too_large":
        body = {**good, "parameters": {"source": "s3://chaos/" + "x" * 70_000}}
        return subject, _pack(body), request_id
    raise ValueError(kind)


def plan(requests: int, malformed_share: float, seed: int) -> list[Planned]:
    """The messages in publishing order: originals shuffled, duplicates after their original."""
    rng = random.Random(seed)
    malformed = round(requests * malformed_share)
    originals: list[Planned] = []
    for i in range(requests - malformed):
        rid = f"chaos-{i:05d}"
        subject, data = valid_request(rid, i)
        originals.append(Planned("valid", subject, data, {"Nats-Msg-Id": rid}, rid))
    for i in range(malformed):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        subject, data, bad_id = malformed_message(kind, i)
        # As a client sends it: Nats-Msg-Id = request_id; one for those without an id too, so
        # that a publish retried after a lost ack is not stored twice.
        headers = {"Nats-Msg-Id": bad_id or f"bad-msg-{i:05d}"}
        originals.append(Planned(kind, subject, data, headers, bad_id))
    rng.shuffle(originals)
    keyed = [(float(position), item) for position, item in enumerate(originals)]
    valid = [(p, item) for p, item in keyed if item.kind == "valid"]
    chosen = rng.sample(valid, round(len(valid) * 0.15))
    split = round(len(valid) * 0.10)
    for n, (position, item) in enumerate(chosen):
        assert item.request_id is not None
        if n < split:  # a new stream message: soon after (often in flight) or well after
            offset = rng.randint(1, 10) if n % 2 else rng.randint(50, 400)
            copy = Planned("republished", item.subject, item.data, None, item.request_id)
        else:  # the same Nats-Msg-Id inside the 2-minute window: JetStream drops it
            offset = rng.randint(1, 200)
            copy = Planned("dedup_header", item.subject, item.data, item.headers, item.request_id)
        keyed.append((position + offset + rng.random() * 0.5 + 0.25, copy))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]


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


@dataclass
class Seen:
    """What the stream says, read once everything is published."""

    states: dict[str, list[str]] = field(default_factory=dict)  # request_id -> states in order
    dead_seqs: set[int] = field(default_factory=set)  # Llmw-Stream-Seq of each dead letter
    dead_codes: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0

    def status(self, item: Stored) -> None:
        status = msgpack.unpackb(item.data)
        self.states.setdefault(status["request_id"], []).append(status["state"])

    def dead_letter(self, item: Stored) -> None:
        self.dead_letters += 1
        self.dead_codes[item.headers.get("Llmw-Reject-Code", "?")] += 1
        with contextlib.suppress(KeyError, ValueError):
            self.dead_seqs.add(int(item.headers["Llmw-Stream-Seq"]))

    def final(self, request_id: str) -> str | None:
        finals = [s for s in self.states.get(request_id, []) if s in ("succeeded", "failed")]
        return finals[-1] if finals else None

    def rejected(self, item: Planned) -> bool:
        if item.seq in self.dead_seqs:
            return True
        return item.request_id is not None and "rejected" in self.states.get(item.request_id, [])


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
    from testing.recording_engine import runs_by_name

    return {
        "messages": messages,
        "seen": seen,
        "runs": runs_by_name(runs_dir),
        "chaos": chaos,
        "tracebacks": crash_summaries(tmp / "bridge.log"),
        "published_s": published_s,
        "settled_s": settled_s,
    }


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def report(args: argparse.Namespace, result: dict[str, Any]) -> bool:
    """Print the table; whether every target was met."""
    from bridge.engines import run_name_for

    messages: list[Planned] = result["messages"]
    seen: Seen = result["seen"]
    runs: dict[str, int] = result["runs"]
    chaos: Chaos = result["chaos"]
    kinds = Counter(m.kind for m in messages)
    valid_ids = [m.request_id for m in messages if m.kind == "valid" and m.request_id]
    malformed = [m for m in messages if m.kind in MALFORMED_KINDS]
    expected = {run_name_for(PIPELINE, rid): rid for rid in valid_ids}

    lost = [rid for name, rid in expected.items() if name not in runs or not seen.final(rid)]
    duplicate_runs = sum(1 for count in runs.values() if count > 1)
    unexpected_runs = sum(1 for name in runs if name not in expected)
    rejected = [m for m in malformed if seen.rejected(m)]
    with_id = [m for m in malformed if m.request_id]
    rejected_status = [m for m in with_id if "rejected" in seen.states.get(m.request_id or "", [])]
    valid_rejected = sum(1 for rid in valid_ids if "rejected" in seen.states.get(rid, []))
    finals = Counter(seen.final(rid) for rid in valid_ids)
    went_back = sum(
        1
        for rid in valid_ids
        if any(
            STATE_ORDER.get(b, 0) < STATE_ORDER.get(a, 0)
            for a, b in zip(seen.states.get(rid, []), seen.states.get(rid, [])[1:], strict=False)
        )
    )
    dropped = sum(1 for m in messages if m.duplicate)
    retried = sum(m.retries for m in messages)
    duplicates_sent = kinds["republished"] + kinds["dedup_header"]

    rows = [
        (
            "requests published (acked by JetStream)",
            f"{len(valid_ids) + len(malformed)}: "
            f"{len(valid_ids)} valid, {len(malformed)} malformed",
            "",
        ),
        (
            "duplicates sent",
            f"{duplicates_sent}: {kinds['republished']} re-published without Nats-Msg-Id, "
            f"{kinds['dedup_header']} with it inside the window",
            "",
        ),
        ("  dropped by JetStream's dedup (Nats-Msg-Id)", str(dropped), ""),
        ("publish retries across NATS restarts", str(retried), ""),
        ("runs created (distinct run names)", str(len(runs)), str(len(valid_ids))),
        (
            "final status of valid requests",
            f"{finals['succeeded']} succeeded, {finals['failed']} failed",
            "",
        ),
        ("lost (no run or no final status)", str(len(lost)), "0"),
        ("duplicate runs (run names with more than one run)", str(duplicate_runs), "0"),
        ("runs no valid request asked for", str(unexpected_runs), "0"),
        ("valid requests rejected", str(valid_rejected), "0"),
        ("rejected (malformed with a rejection)", f"{len(rejected)} / {len(malformed)}", "all"),
        (
            "  with a rejected status (of those carrying a request_id)",
            f"{len(rejected_status)} / {len(with_id)}",
            "",
        ),
        ("dead letters on ai.pipeline.deadletter.>", str(seen.dead_letters), str(len(malformed))),
        ("bridge exits nobody planned (restarted as a pod would be)", str(len(chaos.crashes)), "0"),
        ("requests whose status went back to an earlier state", str(went_back), ""),
        (
            "publishing time / time to settle after it",
            f"{result['published_s']:.0f} s / {result['settled_s']:.0f} s",
            "",
        ),
    ]
    notes = [
        f"Chaos: NATS restarted {chaos.nats_restarts} times, bridge SIGKILLed "
        f"{chaos.bridge_kills} times: " + "; ".join(chaos.events) + ".",
        "The bridge: python -m testing.bridge_process --fail-rate "
        f"{args.fail_rate:g} --idempotent, a subprocess. The recording engine is idempotent by "
        "run name, as the real engines are (Argo refuses a second Workflow of a name, KFP runs "
        "are looked up by name): a bridge killed after submitting and before recording the run "
        "submits again on redelivery and adopts that run instead of making a second one.",
        "Malformed kinds: "
        + ", ".join(f"{kind} {kinds[kind]}" for kind in MALFORMED_KINDS)
        + "; dead letters by code: "
        + ", ".join(f"{code} {n}" for code, n in sorted(seen.dead_codes.items()))
        + ".",
    ]
    no_status = Counter(m.kind for m in with_id if m not in rejected_status)
    if no_status:
        notes.append(
            "Malformed requests with a request_id but no rejected status (dead letter only): "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(no_status.items()))
            + " (the bridge refuses an oversize message before decoding it, so it has no "
            "request_id to publish a status on)."
        )
    if chaos.crashes:
        notes.append(
            "Unplanned bridge exits: "
            + "; ".join(chaos.crashes)
            + ". Tracebacks in its log: "
            + "; ".join(result["tracebacks"] or ["none"])
            + "."
        )
    if lost:
        notes.append("Lost: " + ", ".join(lost[:20]))
    print_table("Bridge chaos benchmark", rows, notes)
    return (
        not lost
        and not chaos.crashes
        and duplicate_runs == 0
        and unexpected_runs == 0
        and valid_rejected == 0
        and len(rejected) == len(malformed)
    )


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
