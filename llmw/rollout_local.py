"""`llmw rollout start` without --dry-run, and `llmw rollout status|history|undo`: ray-local."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmw.progress import fail
from llmw.rollout_commands import EXIT_REFUSED, rollout_app

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest

AppArg = Annotated[str, typer.Argument(help="The application: llm, embeddings, ...")]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="The model's name in the store [default: APP].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _refusals() -> tuple[type[Exception], ...]:
    from components.rollout.application import RolloutRefused
    from components.rollout.catalog import UnknownAppError
    from components.rollout.sources import SourceError
    from components.rollout.staging import VersionConflictError
    from components.rollout.store import StoreError

    return (RolloutRefused, UnknownAppError, VersionConflictError, StoreError, SourceError,
            ValueError, OSError)  # fmt: skip


def apply_rollout(
    request: RolloutRequest, engine: str, as_json: bool, refused: int, rolled_back: int
) -> None:
    """Run the rollout on ``engine``; exit 0 promoted, ``rolled_back`` or ``refused``."""
    if engine != "ray-local":
        raise fail(f"the {engine} engine is not built yet: nothing was applied", refused)
    from components.rollout.local_rollout import start_local
    from components.settings import get_settings

    try:
        result = start_local(request, get_settings())
    except _refusals() as exc:
        raise fail(f"refused: {getattr(exc, 'message', exc)}", refused) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(_describe(result))
    if result["outcome"] != "promoted":
        raise typer.Exit(rolled_back)


def _describe(result: dict[str, Any]) -> str:
    lines = [
        f"{result['app']}: {result.get('previous_version')} -> {result['version']} "
        f"on ray-local: {result['outcome'].upper()}"
    ]
    if "ready_s" in result:
        lines.append(f"serving {result['ready_s']:g} s after the apply")
    if result.get("gate_table"):
        lines += ["", result["gate_table"]]
    if result.get("reason"):
        lines.append(f"rolled back ({result['reason']}); {result.get('previous_version')} "
                     f"serves again after {result.get('restore_s')} s")  # fmt: skip
    return "\n".join(lines)


@rollout_app.command("status")
def status_command(app: AppArg, name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """What ray-local runs for APP and the versions its history records."""
    from components.rollout.local_rollout import status_local
    from components.settings import get_settings

    status = status_local(app, get_settings(), name)
    if as_json:
        typer.echo(json.dumps(status, indent=2))
        return
    ray = status["ray"] or {}
    typer.echo(
        f"{app}: {ray.get('status', 'not deployed')} {ray.get('version') or ''}; current "
        f"{status['current_version']}, previous {status['previous_version']}"
    )


@rollout_app.command("history")
def history_command(app: AppArg, name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """The rollout events of APP's model (STORE/NAME/history.jsonl; STORE: LLMW_MODEL_STORE_URI)."""
    from components.rollout.history import read_history
    from components.settings import get_settings

    events = read_history(name or app, get_settings())
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    for event in events:
        reason = f" ({event['reason']})" if event.get("reason") else ""
        typer.echo(f"{event['at']}  {event['event']:<11} {event.get('version')}  serving "
                   f"{event.get('serving', '-')}{reason}")  # fmt: skip


@rollout_app.command("undo")
def undo_command(app: AppArg, name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """Restore the model APP served before its last promotion (ray-local)."""
    from components.rollout.local_rollout import undo_local
    from components.settings import get_settings

    try:
        result = undo_local(app, get_settings(), name)
    except _refusals() as exc:
        raise fail(f"refused: {getattr(exc, 'message', exc)}", EXIT_REFUSED) from None
    typer.echo(json.dumps(result, indent=2) if as_json else
               f"{app}: undid {result['undone']}; {result['serving']} serves")  # fmt: skip
