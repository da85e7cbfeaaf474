"""`llmw rollout start` without --dry-run, and `llmw rollout status|history|undo`, on either
engine: ray-local (components/rollout/local_rollout.py) or kubernetes (kube_rollout.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmw.progress import fail
from llmw.rollout_commands import EXIT_ENGINE, EXIT_REFUSED, Engine, Target, rollout_app

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings

AppArg = Annotated[str, typer.Argument(help="The application: llm, embeddings, ...")]
NameOpt = Annotated[
    str | None, typer.Option("--name", help="The model's name in the store [default: APP].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
EngineOpt = Annotated[Engine, typer.Option("--engine", help="Where the application runs.")]
TargetOpt = Annotated[Target, typer.Option("--target", help="kubernetes: what serves it.")]


def _refusals() -> tuple[type[Exception], ...]:
    from components.rollout.application import RolloutRefused
    from components.rollout.catalog import UnknownAppError
    from components.rollout.sources import SourceError
    from components.rollout.staging import VersionConflictError
    from components.rollout.store import StoreError

    return (RolloutRefused, UnknownAppError, VersionConflictError, StoreError, SourceError,
            ValueError, OSError)  # fmt: skip


def _engine_errors() -> tuple[type[Exception], ...]:
    """What an engine raises when it fails part way (a restore that did not complete)."""
    from components.rollout.kube_api import KubeError
    from components.rollout.ray_local import RayLocalError
    from components.rollout.rollout_flow import NotServing

    return (KubeError, RayLocalError, NotServing)


def _engine_failed(exc: Exception, app: str, engine: str) -> typer.Exit:
    return fail(
        f"{exc}; the history keeps the rollout as started: llmw rollout status {app} "
        f"--engine {engine} restores what served before it",
        EXIT_ENGINE,
    )


def _kube(engine: Engine) -> bool:
    return engine == Engine.kubernetes


def _on_engine(
    action: str, app: str, name: str | None, engine: Engine, target: Target
) -> dict[str, Any]:
    """``status`` or ``undo`` of APP on ``engine``; refusals and engine failures end the CLI."""
    try:
        if _kube(engine):
            from components.rollout.kube_rollout import status_kube, undo_kube

            kube = {"status": status_kube, "undo": undo_kube}[action]
            result: dict[str, Any] = kube(app, _settings(), name, target.value)
        else:
            from components.rollout.local_rollout import status_local, undo_local

            local = {"status": status_local, "undo": undo_local}[action]
            result = local(app, _settings(), name)
    except _refusals() as exc:
        raise fail(f"refused: {getattr(exc, 'message', exc)}", EXIT_REFUSED) from None
    except _engine_errors() as exc:
        raise _engine_failed(exc, app, engine.value) from None
    return result


def apply_rollout(
    request: RolloutRequest, engine: str, as_json: bool, refused: int, rolled_back: int
) -> None:
    """Run the rollout on ``engine``; exit 0 promoted, ``rolled_back`` or ``refused``."""
    from components.settings import get_settings

    settings = get_settings()
    try:
        if engine == Engine.kubernetes:
            from components.rollout.kube_rollout import start_kube

            result = start_kube(request, settings)
        else:
            from components.rollout.local_rollout import start_local

            result = start_local(request, settings)
    except _refusals() as exc:
        raise fail(f"refused: {getattr(exc, 'message', exc)}", refused) from None
    except _engine_errors() as exc:
        raise _engine_failed(exc, request.app, engine) from None
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(_describe(result))
    if result["outcome"] != "promoted":
        raise typer.Exit(rolled_back)


def _describe(result: dict[str, Any]) -> str:
    lines = []
    recovered = result.get("recovered")
    if recovered:
        lines.append(f"an interrupted rollout of {recovered['version']} was rolled back first: "
                     f"{recovered['serving']} serves again")  # fmt: skip
    lines.append(
        f"{result['app']}: {result.get('previous_version')} -> {result['version']} "
        f"on {result['engine']} ({result['target']}): {result['outcome'].upper()}"
    )
    if "ready_s" in result:
        lines.append(f"serving {result['ready_s']:g} s after the apply")
    if result.get("gate_table"):
        lines += ["", result["gate_table"]]
    if result.get("gate_report"):
        lines.append(f"gate report: {result['gate_report']}")
    if result.get("reason"):
        lines.append(f"rolled back ({result['reason']}); {result.get('previous_version')} "
                     f"serves again after {result.get('restore_s')} s")  # fmt: skip
    return "\n".join(lines)


def _settings() -> Settings:
    from components.settings import get_settings

    return get_settings()


@rollout_app.command("status")
def status_command(
    app: AppArg,
    name: NameOpt = None,
    as_json: JsonOpt = False,
    engine: EngineOpt = Engine.ray_local,
    target: TargetOpt = Target.rayservice,
) -> None:
    """What the engine runs for APP and the versions its history records. An interrupted
    rollout (started, never decided) is rolled back first."""
    status = _on_engine("status", app, name, engine, target)
    if as_json:
        typer.echo(json.dumps(status, indent=2))
        return
    running = status.get("kube") or status.get("ray") or {}
    lines = [
        f"{app}: {running.get('status') or 'not deployed'} {running.get('version') or ''}; "
        f"current {status['current_version']}, previous {status['previous_version']}"
    ]
    if status.get("recovered"):
        lines.append(f"an interrupted rollout of {status['recovered']['version']} was rolled "
                     f"back: {status['recovered']['serving']} serves again")  # fmt: skip
    elif status.get("interrupted"):
        lines.append(f"the rollout of {status['interrupted']} was interrupted; it is rolled "
                     "back when the engine can be reached")  # fmt: skip
    typer.echo("\n".join(lines))


@rollout_app.command("history")
def history_command(app: AppArg, name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """The rollout events of APP's model (STORE/NAME/history.jsonl; STORE: LLMW_MODEL_STORE_URI)."""
    from components.rollout.history import read_history

    events = read_history(name or app, _settings())
    if as_json:
        typer.echo(json.dumps(events, indent=2))
        return
    for event in events:
        reason = f" ({event['reason']})" if event.get("reason") else ""
        typer.echo(f"{event['at']}  {event['event']:<11} {event.get('version')}  serving "
                   f"{event.get('serving', '-')}  {event.get('engine', 'ray-local')}"
                   f"{reason}")  # fmt: skip


@rollout_app.command("undo")
def undo_command(
    app: AppArg,
    name: NameOpt = None,
    as_json: JsonOpt = False,
    engine: EngineOpt = Engine.ray_local,
    target: TargetOpt = Target.rayservice,
) -> None:
    """Restore the model APP served before its last promotion."""
    result = _on_engine("undo", app, name, engine, target)
    typer.echo(json.dumps(result, indent=2) if as_json else
               f"{app}: undid {result['undone']}; {result['serving']} serves")  # fmt: skip
