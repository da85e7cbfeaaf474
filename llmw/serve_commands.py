"""`llmw serve up|status|down`: the local Ray head (ray-local) on 127.0.0.1."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from llmw.progress import fail

serve_app = typer.Typer(
    name="serve",
    help="The local Ray head (ray-local) that serves the RayService's applications on "
    "127.0.0.1 (ports from LLMW_RAY_LOCAL_*).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _ray():  # type: ignore[no-untyped-def]
    from components.rollout.ray_local import RayLocal
    from components.settings import get_settings

    return RayLocal(get_settings())


@serve_app.command("up")
def up_command() -> None:
    """Start the local Ray head (nothing happens when it runs already)."""
    from components.rollout.ray_local import RayLocalError

    ray = _ray()
    try:
        started = ray.up()
    except RayLocalError as exc:
        raise fail(str(exc), 1) from None
    state = "started" if started else "already running"
    typer.echo(f"ray-local {state}: serving {ray.http_url}, dashboard {ray.dashboard_url}")


@serve_app.command("status")
def status_command(as_json: JsonOpt = False) -> None:
    """The head's URLs and each application's status and model version; exit 1 when down."""
    status = _ray().status()
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        typer.echo(f"ray-local {'up' if status['up'] else 'down'}: {status['http_url']}")
        for name, app in status["apps"].items():
            typer.echo(f"  {name:<12} {app['status']:<14} {app['version'] or '-'}")
    if not status["up"]:
        raise typer.Exit(1)


@serve_app.command("down")
def down_command() -> None:
    """Stop the local Ray head and every process it started."""
    stopped = _ray().down()
    typer.echo("ray-local stopped" if stopped else "ray-local was not running")
