"""What the bridge chaos bench reads back (``Seen``: status events and dead letters) and the
table it prints from it, the plan and the runs (``Tally``)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgpack

from bench.bridge_chaos_plan import MALFORMED_KINDS, PIPELINE, Planned
from bench.bridge_common import Stored, print_table

if TYPE_CHECKING:
    from bench.bridge_chaos import Chaos

STATE_ORDER = {"accepted": 0, "submitted": 1, "running": 2, "succeeded": 3, "failed": 3}


@dataclass
class Seen:
    """What the stream says, read once everything is published."""

    states: dict[str, list[str]] = field(default_factory=dict)  # request_id -> states in order
    dead_seqs: set[int] = field(default_factory=set)  # Llmw-Stream-Seq of each dead letter
    dead_codes: Counter[str] = field(default_factory=Counter)
    dead_letters: int = 0
    recorded: dict[str, float] = field(default_factory=dict)  # run name -> first submitted

    def status(self, item: Stored) -> None:
        status = msgpack.unpackb(item.data)
        self.states.setdefault(status["request_id"], []).append(status["state"])
        if status["state"] == "submitted" and status.get("pipeline"):
            from bridge.engines import run_name_for

            at = datetime.fromisoformat(status["at"].replace("Z", "+00:00")).timestamp()
            self.recorded.setdefault(run_name_for(status["pipeline"], status["request_id"]), at)

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

    def went_back(self, request_id: str) -> bool:
        """Whether the request's status ever went back to an earlier state."""
        states = self.states.get(request_id, [])
        return any(
            STATE_ORDER.get(b, 0) < STATE_ORDER.get(a, 0) for a, b in itertools.pairwise(states)
        )


@dataclass
class Tally:
    """The figures of one run of the bench."""

    kinds: Counter[str]
    valid_ids: list[str]
    malformed: list[Planned]
    lost: list[str]
    duplicate_runs: int
    unexpected_runs: int
    rejected: list[Planned]
    with_id: list[Planned]  # malformed messages that carry a request_id
    rejected_status: list[Planned]  # of those, the ones with a rejected status
    valid_rejected: int
    finals: Counter[str | None]
    went_back: int
    submitted: int  # submit calls that created or adopted a run
    allowed_repeats: list[str]  # after a bridge died between submitting and recording
    double: list[str]  # a process submitting twice, or a recorded run submitted again

    @classmethod
    def of(cls, messages: list[Planned], seen: Seen, result: dict[str, Any]) -> Tally:
        from bridge.engines import run_name_for
        from testing.recording_engine import repeats

        runs: dict[str, int] = result["runs"]
        calls = result["submissions"]
        allowed, double = repeats(calls, result["died"], seen.recorded)

        valid_ids = [m.request_id for m in messages if m.kind == "valid" and m.request_id]
        malformed = [m for m in messages if m.kind in MALFORMED_KINDS]
        expected = {run_name_for(PIPELINE, rid): rid for rid in valid_ids}
        with_id = [m for m in malformed if m.request_id]
        return cls(
            kinds=Counter(m.kind for m in messages),
            valid_ids=valid_ids,
            malformed=malformed,
            lost=[rid for name, rid in expected.items() if name not in runs or not seen.final(rid)],
            duplicate_runs=sum(1 for count in runs.values() if count > 1),
            unexpected_runs=sum(1 for name in runs if name not in expected),
            rejected=[m for m in malformed if seen.rejected(m)],
            with_id=with_id,
            rejected_status=[
                m for m in with_id if "rejected" in seen.states.get(m.request_id or "", [])
            ],
            valid_rejected=sum(1 for rid in valid_ids if "rejected" in seen.states.get(rid, [])),
            finals=Counter(seen.final(rid) for rid in valid_ids),
            went_back=sum(1 for rid in valid_ids if seen.went_back(rid)),
            submitted=sum(1 for call in calls if call.succeeded),
            allowed_repeats=allowed,
            double=double,
        )

    @property
    def met(self) -> bool:
        """Nothing lost, duplicated or run unasked; every malformed message rejected."""
        return (
            not self.lost
            and self.duplicate_runs == 0
            and not self.double
            and self.unexpected_runs == 0
            and self.valid_rejected == 0
            and len(self.rejected) == len(self.malformed)
        )


def rows(t: Tally, messages: list[Planned], result: dict[str, Any]) -> list[tuple[str, str, str]]:
    seen: Seen = result["seen"]
    chaos: Chaos = result["chaos"]
    kinds = t.kinds
    return [
        (
            "requests published (acked by JetStream)",
            f"{len(t.valid_ids) + len(t.malformed)}: "
            f"{len(t.valid_ids)} valid, {len(t.malformed)} malformed",
            "",
        ),
        (
            "duplicates sent",
            f"{kinds['republished'] + kinds['dedup_header']}: {kinds['republished']} re-published "
            f"without Nats-Msg-Id, {kinds['dedup_header']} with it inside the window",
            "",
        ),
        (
            "  dropped by JetStream's dedup (Nats-Msg-Id)",
            str(sum(m.duplicate for m in messages)),
            "",
        ),
        ("publish retries across NATS restarts", str(sum(m.retries for m in messages)), ""),
        ("runs created (distinct run names)", str(len(result["runs"])), str(len(t.valid_ids))),
        (
            "final status of valid requests",
            f"{t.finals['succeeded']} succeeded, {t.finals['failed']} failed",
            "",
        ),
        ("lost (no run or no final status)", str(len(t.lost)), "0"),
        ("duplicate runs (run names with more than one run)", str(t.duplicate_runs), "0"),
        ("submissions that created or adopted a run", str(t.submitted), str(len(t.valid_ids))),
        (
            "  repeated after a bridge died between submitting and recording",
            str(len(t.allowed_repeats)),
            "",
        ),
        ("  double submissions (one process twice, or a recorded run)", str(len(t.double)), "0"),
        ("runs no valid request asked for", str(t.unexpected_runs), "0"),
        ("valid requests rejected", str(t.valid_rejected), "0"),
        ("rejected (malformed with a rejection)", f"{len(t.rejected)} / {len(t.malformed)}", "all"),
        (
            "  with a rejected status (of those carrying a request_id)",
            f"{len(t.rejected_status)} / {len(t.with_id)}",
            "",
        ),
        ("dead letters on ai.pipeline.deadletter.>", str(seen.dead_letters), str(len(t.malformed))),
        ("bridge exits nobody planned (restarted as a pod would be)", str(len(chaos.crashes)), "0"),
        ("requests whose status went back to an earlier state", str(t.went_back), ""),
        (
            "publishing time / time to settle after it",
            f"{result['published_s']:.0f} s / {result['settled_s']:.0f} s",
            "",
        ),
    ]


def notes(t: Tally, args: argparse.Namespace, result: dict[str, Any]) -> list[str]:
    seen: Seen = result["seen"]
    chaos: Chaos = result["chaos"]
    found = [
        f"Chaos: NATS restarted {chaos.nats_restarts} times, bridge SIGKILLed "
        f"{chaos.bridge_kills} times: " + "; ".join(chaos.events) + ".",
        "The bridge: python -m testing.bridge_process --fail-rate "
        f"{args.fail_rate:g} --idempotent, a subprocess. The recording engine is idempotent by "
        "run name, as the real engines are (Argo refuses a second Workflow of a name, KFP runs "
        "are looked up by name): a bridge killed after submitting and before recording the run "
        "submits again on redelivery and adopts that run instead of making a second one.",
        "Malformed kinds: "
        + ", ".join(f"{kind} {t.kinds[kind]}" for kind in MALFORMED_KINDS)
        + "; dead letters by code: "
        + ", ".join(f"{code} {n}" for code, n in sorted(seen.dead_codes.items()))
        + ".",
    ]
    no_status = Counter(m.kind for m in t.with_id if m not in t.rejected_status)
    if no_status:
        found.append(
            "Malformed requests with a request_id but no rejected status (dead letter only): "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(no_status.items()))
            + " (the bridge refuses an oversize message before decoding it, so it has no "
            "request_id to publish a status on)."
        )
    if chaos.crashes:
        found.append(
            "Unplanned bridge exits: "
            + "; ".join(chaos.crashes)
            + ". Tracebacks in its log: "
            + "; ".join(result["tracebacks"] or ["none"])
            + "."
        )
    if t.lost:
        found.append("Lost: " + ", ".join(t.lost[:20]))
    if t.double:
        found.append("Double submissions: " + "; ".join(t.double[:5]))
    return found


def report(args: argparse.Namespace, result: dict[str, Any]) -> bool:
    """Print the table; whether every target was met."""
    messages: list[Planned] = result["messages"]
    tally = Tally.of(messages, result["seen"], result)
    print_table("Bridge chaos benchmark", rows(tally, messages, result), notes(tally, args, result))
    return tally.met and not result["chaos"].crashes
