"""A rollout's course, the same on every engine: record, apply, wait, gate, then promote or
restore; undo; and the recovery of a rollout that was interrupted.

An engine is a ``Backend``: what serves the application now (an *entry*: its ``serveConfigV2``
application, or the InferenceService's labels, annotations and spec; None when nothing serves it),
the entry a model makes of it (refusing what the cluster would refuse), applying an entry, waiting
until an entry serves, and promoting (a KServe canary taken to all traffic). The flow stages the
model, writes ``started`` with the previous entry to the history before anything is applied,
measures the old model for the gate, applies, waits, gates, and records ``promoted``, or restores
the previous entry, waits until the old model serves again and records ``rolled_back``.

A ``started`` with no decision after it is a rollout (or an undo: ``started`` with ``undo``) that
was interrupted (a crash, a kill): every ``start``, ``undo`` and ``status`` first restores its
previous entry, waits until it serves, and records ``rolled_back`` with reason ``interrupted``,
so the model that served before it serves again, never neither.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from components.rollout import gate, history
from components.rollout.application import ModelRef, RolloutRefused, memory_need_gb
from components.rollout.catalog import ServeApp
from components.rollout.gate_report import store_gate_report
from components.rollout.staging import stage_model

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings

Entry = dict[str, Any] | None
DECISIONS = ("promoted", "rolled_back", "undone")


class NotServing(RuntimeError):
    """The application did not come to serve the expected entry (failed or timed out)."""


@dataclass
class GateOptions:
    thresholds: gate.GateThresholds = field(default_factory=gate.GateThresholds)
    labelled_set: str | None = None
    rounds: int = 2


class Backend(Protocol):
    """One engine and target: how an application's entry is read, changed, applied, awaited."""

    engine: str  # ray-local, kubernetes
    target: str  # rayservice, kserve
    app: ServeApp
    errors: tuple[type[Exception], ...]  # what apply and wait raise besides NotServing

    def check(self) -> None:
        """RolloutRefused when the engine cannot be used (not running, unreachable)."""

    def current(self) -> Entry:
        """What serves the application now (read afresh)."""

    def change(self, model: ModelRef, memory_gb: float, request: RolloutRequest) -> Entry:
        """The entry serving ``model``, from ``current()``'s; RolloutRefused naming the rule."""

    def version(self, entry: Entry) -> str | None:
        """The model version an entry serves."""

    def route(self) -> str:
        """The application's OpenAI-compatible base URL, for the gate."""

    def serving(self) -> bool:
        """Whether the current entry serves now (else the gate has no baseline)."""

    def apply(self, entry: Entry) -> None:
        """Make ``entry`` what the engine runs (None: no application)."""

    def wait_serving(self, entry: Entry, timeout_s: float) -> float:
        """Seconds until ``entry`` serves (None: until the application is gone); NotServing."""

    def promote(self, entry: Entry, timeout_s: float) -> Entry:
        """The entry after promotion, applied and serving (most engines: ``entry`` itself)."""

    def describe(self) -> dict[str, Any]:
        """What the engine runs for the application, for ``status``."""


def poll(read: Callable[[], tuple[str, str]], timeout_s: float, interval_s: float) -> float:
    """Seconds until ``read()`` says ``("serving", why)``; NotServing on ``("failed", why)`` or
    after ``timeout_s`` (any other state is pending)."""
    started = time.monotonic()
    while True:
        state, why = read()
        if state == "serving":
            return time.monotonic() - started
        if state == "failed":
            raise NotServing(why)
        if time.monotonic() - started > timeout_s:
            raise NotServing(f"not serving after {timeout_s:g} s ({why})")
        time.sleep(interval_s)


def _event(backend: Backend, **fields: Any) -> dict[str, Any]:
    return {"app": backend.app.name, "engine": backend.engine, "target": backend.target, **fields}


def interrupted(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last ``started`` event when no decision follows it."""
    for event in reversed(events):
        if event.get("event") in DECISIONS:
            return None
        if event.get("event") == "started":
            return event
    return None


def restore(backend: Backend, previous: Entry, timeout_s: float) -> float:
    """Apply ``previous`` and wait until it serves (or the application is gone)."""
    backend.apply(previous)
    return round(backend.wait_serving(previous, timeout_s), 2)


def recover(backend: Backend, name: str, settings: Settings) -> dict[str, Any] | None:
    """Restore the previous entry of an interrupted rollout and record it; None when none was."""
    pending = interrupted(history.read_history(name, settings))
    if pending is None:
        return None
    where = (pending.get("engine", "ray-local"), pending.get("target", "rayservice"))
    if where != (backend.engine, backend.target):
        raise RolloutRefused(
            "interrupted",
            f"the rollout of {pending['version']} on {where[0]} ({where[1]}) was interrupted: "
            f"run llmw rollout status {backend.app.name} --engine {where[0]} --target {where[1]} "
            "first, which restores what served before it",
        )
    seconds = restore(backend, pending.get("previous_entry"), settings.rollout_ready_timeout_s)
    serving = pending.get("previous_version")
    history.append_event(name, _event(
        backend, event="rolled_back", version=pending["version"], previous_version=serving,
        serving=serving, reason="interrupted",
    ), settings)  # fmt: skip
    return {"version": pending["version"], "serving": serving, "restore_s": seconds}


def start(
    backend: Backend, request: RolloutRequest, settings: Settings, options: GateOptions
) -> dict[str, Any]:
    """Roll ``request`` out through ``backend``; ``outcome`` promoted or rolled_back."""
    backend.check()
    name = request.name or backend.app.name
    recovered = recover(backend, name, settings)
    before = backend.current()
    staged = stage_model(request.source, name, request.version, settings)
    memory = request.memory_gb or memory_need_gb(
        staged.manifest.weights_bytes, settings.rollout_memory_factor
    )
    model = ModelRef(staged.uri, request.version, staged.manifest.digest)
    entry = backend.change(model, memory, request)
    record = {"version": request.version, "previous_version": backend.version(before)}
    result: dict[str, Any] = {
        "app": backend.app.name, "engine": backend.engine, "target": backend.target,
        **record, "stage": staged.summary(),
    }  # fmt: skip
    if recovered:
        result["recovered"] = recovered
    history.append_event(
        name, _event(backend, event="started", previous_entry=before, entry=entry, **record),
        settings,
    )  # fmt: skip
    baseline = None
    if before is not None and backend.serving():
        baseline = _measure(backend, "old", options)
    return _decide(backend, (name, settings), (before, entry), baseline, options, result)


def _measure(backend: Backend, label: str, options: GateOptions) -> gate.SideResult:
    labelled = gate.load_labelled_set(options.labelled_set)
    return gate.measure(backend.app.name, backend.route(), label, labelled, options.rounds)


def _decide(
    backend: Backend,
    where: tuple[str, Settings],
    entries: tuple[Entry, Entry],
    baseline: gate.SideResult | None,
    options: GateOptions,
    result: dict[str, Any],
) -> dict[str, Any]:
    (name, settings), (before, entry) = where, entries
    record = {"version": result["version"], "previous_version": result["previous_version"]}
    timeout = settings.rollout_ready_timeout_s
    started = time.monotonic()
    report = None
    caught: tuple[type[Exception], ...] = (NotServing, *backend.errors)
    try:
        backend.apply(entry)
        result["ready_s"] = round(backend.wait_serving(entry, timeout), 2)
        report = gate.decide(
            backend.app.name, baseline, _measure(backend, "new", options), options.thresholds
        )
        failure = None if report.passed else "gate failed: " + "; ".join(report.reasons)
        if failure is None:
            entry = backend.promote(entry, timeout)
    except caught as exc:
        failure = str(exc)
    result["apply_to_decision_s"] = round(time.monotonic() - started, 2)
    if report is not None:
        result["gate"], result["gate_table"] = report.to_json(), report.table()
        result["gate_report"] = store_gate_report(report, name, record["version"], settings)
        history.append_event(name, _event(backend, event="gate", gate=report.to_json(), **record),
                             settings)  # fmt: skip
    if failure is None:
        history.append_event(name, _event(
            backend, event="promoted", serving=record["version"], previous_entry=before,
            entry=entry, **record,
        ), settings)  # fmt: skip
        return {**result, "outcome": "promoted"}
    seconds = restore(backend, before, timeout)
    history.append_event(name, _event(
        backend, event="rolled_back", serving=record["previous_version"], reason=failure, **record
    ), settings)  # fmt: skip
    return {**result, "outcome": "rolled_back", "reason": failure, "restore_s": seconds}


def undo(backend: Backend, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """Restore the entry the last promotion replaced; RolloutRefused when there is none."""
    backend.check()
    name = name or backend.app.name
    recovered = recover(backend, name, settings)
    decisions = [
        e for e in history.read_history(name, settings) if e["event"] in ("promoted", "undone")
    ]
    if not decisions or decisions[-1]["event"] != "promoted":
        raise RolloutRefused("nothing_to_undo", f"{backend.app.name}: no promotion to undo")
    last = decisions[-1]
    if last.get("engine", "ray-local") != backend.engine:
        raise RolloutRefused(
            "nothing_to_undo",
            f"{backend.app.name}: its last promotion was on {last.get('engine', 'ray-local')}",
        )
    serving = backend.version(last["previous_entry"])
    current = backend.current()
    history.append_event(name, _event(
        backend, event="started", undo=True, version=serving,
        previous_version=backend.version(current), previous_entry=current,
        entry=last["previous_entry"],
    ), settings)  # fmt: skip
    seconds = restore(backend, last["previous_entry"], settings.rollout_ready_timeout_s)
    history.append_event(
        name, _event(backend, event="undone", version=last["version"], serving=serving), settings
    )
    result = {"app": backend.app.name, "undone": last["version"], "serving": serving,
              "restore_s": seconds}  # fmt: skip
    return {**result, "recovered": recovered} if recovered else result


def status(backend: Backend, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """What the engine runs for the application and what its history records; an interrupted
    rollout is recovered first when the engine can be reached."""
    name = name or backend.app.name
    recovered = None
    try:
        backend.check()
        recovered = recover(backend, name, settings)
    except RolloutRefused:
        pass  # not reachable (or another engine's): status shows what it can
    events = history.read_history(name, settings)
    current, previous = history.serving_versions(events)
    pending = interrupted(events)
    return {
        "app": backend.app.name,
        "engine": backend.engine,
        "target": backend.target,
        **backend.describe(),
        "current_version": current,
        "previous_version": previous,
        "interrupted": pending["version"] if pending else None,
        "recovered": recovered,
    }
