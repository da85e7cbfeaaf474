"""`llmw events list` and `llmw events simulate`: the Argo Events sensors, offline.

Imports stay light: the sensors, the bridge and NATS load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmw.progress import fail

if TYPE_CHECKING:
    from components.settings import Settings
    from sensors.render import EventDocuments
    from sensors.simulate import Simulation, TriggerOutcome

EXIT_NOTHING_FIRES = 3
EXIT_FAILED = 1
EXIT_REJECTED = 2

events_app = typer.Typer(
    name="events",
    help="The Argo Events sensors that start the pipelines: list them, or try one on an event.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _documents(settings: Settings) -> EventDocuments:
    from components.orchestration.schema_validation import SchemaViolationError
    from sensors.render import documents

    try:
        return documents(settings)
    except (ValueError, FileNotFoundError, SchemaViolationError) as exc:
        raise fail(str(exc)) from None


@events_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Each sensor: the event it listens to, the pipeline it starts and how (through the
    bridge, or directly), or why it is skipped."""
    from components.settings import get_settings
    from sensors.listing import rows

    listed = rows(_documents(get_settings()))
    if as_json:
        typer.echo(json.dumps(listed, indent=2))
        return
    for row in listed:
        if row["skipped"]:
            typer.echo(f"{row['sensor']}: skipped: {row['skipped']}")
            continue
        typer.echo(
            f"{row['sensor']}: {row['source_type']} {row['event_source']}/{row['event']} "
            f"({row['listens']}) -> {row['pipeline']} via {row['path']}: "
            f"{row['kind']} {row['target']}"
        )


def bridge_verdict(request: Any, subject: str, settings: Settings) -> dict[str, Any]:
    """Whether this bridge accepts the request as Argo Events publishes it (compact JSON)."""
    from bridge.messages import Rejection, decode_request

    data = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()
    try:
        decode_request(data, subject, settings.bridge_max_message_bytes)
    except Rejection as rejection:
        return {"accepts": False, "code": rejection.code.value, "reason": rejection.reason}
    return {"accepts": True}


def _verdicts(result: Simulation, settings: Settings) -> dict[str, dict[str, Any]]:
    found = {}
    for outcome in result.triggers:
        if outcome.kind == "nats" and outcome.fires and outcome.creates:
            creates = outcome.creates
            found[outcome.name] = bridge_verdict(creates["request"], creates["subject"], settings)
    return found


def _show_outcome(outcome: TriggerOutcome, verdict: dict[str, Any] | None) -> None:
    if not outcome.fires:
        typer.echo(f"{outcome.name} does not fire ({outcome.kind} {outcome.target}):")
        for problem in outcome.problems:
            typer.echo(f"  - {problem}")
        return
    creates = dict(outcome.creates or {})
    kind = creates.pop("kind")
    typer.echo(f"fires {outcome.name} ({outcome.kind} {outcome.target}); it creates this {kind}:")
    typer.echo("  " + json.dumps(creates, indent=2).replace("\n", "\n  "))
    for problem in outcome.problems:
        typer.echo(f"  problem: {problem}")
    if verdict is not None:
        accepted = "accepts it" if verdict["accepts"] else "rejects it"
        detail = "" if verdict["accepts"] else f": {verdict['code']}: {verdict['reason']}"
        typer.echo(f"  the bridge {accepted}{detail}")
    if outcome.dead_letter:
        typer.echo(f"  when it fails for good: the event goes to {outcome.dead_letter}")


def _show(result: Simulation, verdicts: dict[str, dict[str, Any]]) -> None:
    event = result.event
    where = f"{event.get('source')}/{event.get('subject')}" if event else "no event"
    details = f" ({event['form']}, id {event['id']})" if event else ""
    typer.echo(f"sensor {result.sensor} ({result.pipeline}) on {where}{details}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.reasons:
        typer.echo("nothing fires:")
        for reason in result.reasons:
            typer.echo(f"  - {reason}")
    for outcome in result.triggers:
        _show_outcome(outcome, verdicts.get(outcome.name))


def _simulate(sensor: str, event_file: Path, settings: Settings) -> Simulation:
    from sensors.simulate import Unsupported, simulate

    found = _documents(settings)
    if sensor in found.skipped:
        raise fail(f"sensor {sensor} is skipped: {found.skipped[sensor]}")
    document = found.sensors.get(sensor)
    if document is None:
        known = ", ".join(sorted([*found.sensors, *found.skipped]))
        raise fail(f"unknown sensor {sensor!r} (sensors: {known})")
    source = found.event_sources[document["spec"]["dependencies"][0]["eventSourceName"]]
    try:
        raw = event_file.read_bytes()
    except OSError as exc:
        raise fail(f"{event_file}: {exc.strerror or exc}") from None
    try:
        return simulate(document, source, raw)
    except Unsupported as exc:
        raise fail(f"the simulator does not implement this: {exc}", EXIT_FAILED) from None
    except ValueError as exc:
        raise fail(f"{event_file}: {exc}") from None


@events_app.command("simulate")
def simulate_command(
    sensor: Annotated[str, typer.Argument(help="A sensor's name (llmw events list).")],
    event_file: Annotated[
        Path,
        typer.Argument(
            help="A sample event: a CloudEvent, or the source's own JSON (a MinIO notification "
            "record, a calendar event, a webhook body)."
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    publish: Annotated[
        bool,
        typer.Option("--publish", help="Send the request to the bridge, as the sensor would."),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="With --publish: print status events until the end.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for the end.")
    ] = None,
) -> None:
    """Evaluate a sensor's filters and triggers on a sample event, as Argo Events would: which
    trigger fires and the exact request, Workflow or KFP run it creates, or why nothing fires.

    Exit codes: 0 a trigger fires (and the bridge accepts its request); 3 nothing fires, or what
    fires would be refused; 2 bad input. With --wait: 0 succeeded, 1 failed, 2 rejected.
    """
    from components.settings import get_settings

    settings = get_settings()
    result = _simulate(sensor, event_file, settings)
    verdicts = _verdicts(result, settings)
    if as_json:
        payload = result.to_json()
        for trigger in payload["triggers"]:
            trigger["bridge"] = verdicts.get(trigger["trigger"])
        typer.echo(json.dumps(payload, indent=2))
    else:
        _show(result, verdicts)
    accepted = result.fires and all(v["accepts"] for v in verdicts.values())
    if publish:
        _publish(result, settings, wait, timeout, as_json)
    elif not accepted:
        raise typer.Exit(EXIT_NOTHING_FIRES)


def _publish(
    result: Simulation, settings: Settings, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Publish the request of the NATS trigger that fires, as Argo Events does: the JSON
    payload on its subject, no headers (acknowledged by JetStream here, to report it)."""
    import asyncio

    fired = [t for t in result.triggers if t.fires and t.creates]
    if not fired:
        raise typer.Exit(EXIT_NOTHING_FIRES)
    nats = [t for t in fired if t.kind == "nats"]
    if not nats:
        raise fail(
            f"sensor {result.sensor} starts its pipeline directly ({fired[0].kind}): "
            "--publish sends requests to the bridge only"
        )
    creates = nats[0].creates or {}
    try:
        last = asyncio.run(
            publish_request(
                settings, creates["subject"], creates["request"], wait, timeout, as_json
            )
        )
    except RuntimeError as exc:  # bridge.client.TriggerError: NATS or the stream unreachable
        raise fail(str(exc), EXIT_FAILED) from None
    if last is None:
        return
    if last == "rejected":
        raise typer.Exit(EXIT_REJECTED)
    if last != "succeeded":
        raise typer.Exit(EXIT_FAILED)


async def publish_request(
    settings: Settings,
    subject: str,
    request: dict[str, Any],
    wait: bool,
    timeout: float | None,
    as_json: bool,
) -> str | None:
    """Publish ``request`` as compact JSON on ``subject`` (LLMW_NATS_URL), without headers, as
    Argo Events' NATS trigger does; with ``wait``, print its status events; the last state."""
    import contextlib

    from nats.js.errors import NoStreamResponseError

    from bridge.client import TriggerError, connect, statuses

    data = json.dumps(request, separators=(",", ":"), ensure_ascii=False).encode()
    nc = await connect(settings)
    try:
        try:
            # No headers at all (not even Nats-Expected-Stream): the bytes Argo Events sends.
            await nc.jetstream().publish(subject, data)
        except NoStreamResponseError:
            raise TriggerError(
                f"no stream {settings.bridge_stream} takes {subject}: is the bridge running?"
            ) from None
        if not as_json:
            typer.echo(f"request {request.get('request_id')} published on {subject}")
        if not wait:
            return None
        last = None
        async for status in statuses(nc, str(request.get("request_id")), timeout):
            typer.echo(status.model_dump_json(exclude_none=True))
            last = status.state.value
        return last
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
