"""`llmw bridge` (the NATS service) and `llmw trigger` (a request through it)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmw.engine_commands import PARAM_HELP, validated_params
from llmw.progress import fail

if TYPE_CHECKING:
    from bridge.messages import PipelineRequest

EXIT_FAILED = 1
EXIT_REJECTED = 2


class TriggerEngine(StrEnum):
    kfp_local = "kfp-local"
    argo_local = "argo-local"
    kfp = "kfp"
    argo = "argo"


def bridge_command(
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING.")] = "INFO",
) -> None:
    """Serve AI_PIPELINE requests until SIGTERM: one run per request, status events back.

    NATS from LLMW_NATS_URL (and LLMW_NATS_* credentials); /healthz, /readyz and /metrics on
    LLMW_BRIDGE_HTTP_PORT.
    """
    from bridge.main import serve
    from components.settings import get_settings

    try:
        settings = get_settings()
        serve(settings, log_level=log_level.upper())
    except ValueError as exc:  # contradictory or missing NATS credentials, named by setting
        raise fail(str(exc)) from None


def trigger_command(
    pipeline: Annotated[str, typer.Argument(help="A registered pipeline name.")],
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help=PARAM_HELP)] = None,
    engine: Annotated[
        TriggerEngine | None,
        typer.Option("--engine", help="Where to run it (default: the pipeline's own)."),
    ] = None,
    experiment: Annotated[str | None, typer.Option("--experiment", help="KFP experiment.")] = None,
    request_id: Annotated[
        str | None, typer.Option("--request-id", help="Idempotency key (default: a new uuid).")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Print status events until the end.")] = (
        False
    ),
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds to wait for the end.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Status events as JSON lines.")] = False,
) -> None:
    """Publish a pipeline request on NATS for the bridge; with --wait, follow it to the end.

    Exit codes with --wait: 0 succeeded, 1 failed, 2 rejected (or bad parameters).
    """
    validated_params(pipeline, param)  # refuse locally what the bridge would reject
    import asyncio

    from bridge.client import TriggerError, trigger
    from bridge.messages import PipelineStatus, RunState
    from components.settings import get_settings

    request = _request(pipeline, param, engine, experiment, request_id)

    def show(status: PipelineStatus) -> None:
        if as_json:
            typer.echo(status.model_dump_json(exclude_none=True))
            return
        typer.echo(_describe(status))

    def published() -> None:  # only once JetStream has acknowledged it
        if not as_json:
            typer.echo(f"request {request.request_id} published on ai.pipeline.trigger.{pipeline}")

    try:
        last = asyncio.run(trigger(get_settings(), request, wait, show, timeout, published))
    except TriggerError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    if last is None:
        return
    if last.state is RunState.rejected:
        raise typer.Exit(EXIT_REJECTED)
    if last.state is not RunState.succeeded:
        raise typer.Exit(EXIT_FAILED)


def _request(
    pipeline: str,
    param: list[str] | None,
    engine: TriggerEngine | None,
    experiment: str | None,
    request_id: str | None,
) -> PipelineRequest:
    """The request the options describe, or exit 2 naming what is wrong."""
    from bridge.messages import PipelineRequest
    from components.registry import parse_assignments

    try:
        return PipelineRequest(
            request_id=request_id or str(uuid.uuid4()),
            pipeline=pipeline,
            engine=engine.value if engine else None,
            parameters=parse_assignments(param or []),
            experiment=experiment,
        )
    except ValueError as exc:
        raise fail(str(exc)) from None


def _describe(status: Any) -> str:
    parts = [f"{status.at} {status.state.value}"]
    if status.run_id:
        parts.append(f"run {status.run_id}")
    if status.run_url:
        parts.append(status.run_url)
    if status.error:
        parts.append(f"({status.error.code}: {status.error.message})")
    return " ".join(parts)
