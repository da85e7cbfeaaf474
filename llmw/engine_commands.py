"""`llmw compile`, `llmw run`, `llmw submit`, `llmw status`: one front for both engines.

Parameters are validated against the job's model before anything runs or is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from llmw.progress import fail

if TYPE_CHECKING:
    from components.orchestration.runs import RunStatus, SubmittedRun
    from components.settings import Settings

PARAM_HELP = "KEY=VALUE, repeatable; keys are the pipeline's parameters."


class LocalEngine(StrEnum):
    kfp_local = "kfp-local"
    argo_local = "argo-local"


class RemoteEngine(StrEnum):
    kfp = "kfp"
    argo = "argo"


def validated_params(pipeline: str, assignments: list[str] | None) -> dict[str, Any]:
    """The -p assignments checked against the pipeline's model (JSON-ready), or exit 2."""
    from components.registry import (
        ParameterError,
        UnknownPipelineError,
        get_job,
        parse_assignments,
    )

    try:
        job = get_job(pipeline)
        model = job.validate(parse_assignments(assignments or []))
    except (UnknownPipelineError, ParameterError) as exc:
        raise fail(str(exc)) from None
    return model.model_dump(mode="json")


def compile_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the compiled YAML.")] = Path(
        "build/compiled"
    ),
) -> None:
    """Compile every KFP pipeline to IR YAML and render every Argo WorkflowTemplate, validated,
    plus the NATS bridge's Kubernetes manifests (bridge/bridge.k8s.yaml), the Argo Events
    EventSources, Sensors and their RBAC (sensors/) and the cluster's RayService (serving/).

    The output is byte-identical across runs. Documents are validated strictly against the
    pinned schemas (shipped with llmw; LLMW_SCHEMAS_DIR points elsewhere); any violation fails
    the command and nothing is written.
    """
    import shutil
    import tempfile

    from bridge.deploy import render_manifests, write_manifests
    from components.rollout.rayservice import render_all as render_rayservice
    from components.settings import get_settings
    from pipelines.compiler import PipelineSpecError, compile_all
    from sensors.render import render_all as render_sensors
    from workflows.render import render_all

    settings = get_settings()
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file; give a folder for the compiled YAML")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Everything is written aside first and moved into place only when all of it succeeded.
    with tempfile.TemporaryDirectory(prefix=".llmw-compile-", dir=out.parent) as staging:
        stage = Path(staging)
        try:
            render_manifests(settings)  # refuses bad settings before anything is written
            staged = render_all(stage, settings, settings.schemas_dir)
            staged += compile_all(stage, settings)
            staged += write_manifests(stage, settings)
            staged += render_sensors(stage, settings, settings.schemas_dir)
            staged += render_rayservice(stage / "serving", settings, settings.schemas_dir)
        except (PipelineSpecError, ValueError, FileNotFoundError) as exc:
            raise fail(str(exc)) from None
        for path in staged:
            target = out / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            typer.echo(str(target))


def run_command(
    pipeline: Annotated[str, typer.Argument(help="A registered pipeline name.")],
    engine: Annotated[LocalEngine, typer.Option("--engine", help="Where to run it.")] = (
        LocalEngine.kfp_local
    ),
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help=PARAM_HELP)] = None,
) -> None:
    """Run a whole pipeline on this machine with kfp.local or the argo-local executor.

    Prints the run's report (JSON) on stdout; the engine's log goes to stderr. Exit codes as the
    job's own command: 0 done; 3 some documents failed, or some rows have an error (the rest is
    in); 4 prune refused; 2 bad input or configuration (refused parameters, or a step that
    refused its input); 1 a step failed after its retries.
    """
    from components.registry import get_job

    params = validated_params(pipeline, param)
    report = _run_locally(pipeline, engine, params)
    typer.echo(json.dumps(report, default=str, indent=2))
    status = get_job(pipeline).exit_status(report or {})
    if status.code:
        raise fail(status.message or f"exit code {status.code}", status.code)


def _run_locally(pipeline: str, engine: LocalEngine, params: dict[str, Any]) -> Any:
    """The run's report; a failed run as its message and exit code (2 when the step that failed
    refused its input, else 1)."""
    from components.settings import get_settings

    settings = get_settings()
    if engine is LocalEngine.kfp_local:
        from pipelines.local_run import LocalRunError as KfpRunError
        from pipelines.local_run import run_local as run_kfp_local

        try:
            return run_kfp_local(pipeline, params, settings)
        except KfpRunError as exc:
            raise _run_failed(exc, exc.bad_input) from None
    from workflows.local_runner import LocalRunError as ArgoRunError
    from workflows.local_runner import run_local as run_argo_local

    try:
        return run_argo_local(pipeline, params, settings)["report"]
    except ArgoRunError as exc:
        raise _run_failed(exc, exc.bad_input) from None


def _run_failed(exc: Exception, bad_input: bool) -> typer.Exit:
    from components.exit_codes import EXIT_BAD_INPUT, EXIT_FAILED

    return fail(str(exc), EXIT_BAD_INPUT if bad_input else EXIT_FAILED)


def submit_command(
    pipeline: Annotated[str, typer.Argument(help="A registered pipeline name.")],
    engine: Annotated[RemoteEngine, typer.Option("--engine", help="Which cluster engine.")],
    param: Annotated[list[str] | None, typer.Option("-p", "--param", help=PARAM_HELP)] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", help="KFP experiment (created when missing).")
    ] = None,
    run_name: Annotated[str | None, typer.Option("--run-name", help="Name of the run.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run until it ends.")] = False,
) -> None:
    """Submit a pipeline run to Kubeflow Pipelines or Argo Workflows; print its id and link."""
    params = validated_params(pipeline, param)
    from components.settings import get_settings

    settings = get_settings()
    submitted = _submit(pipeline, engine, params, settings, experiment, run_name)
    typer.echo(f"run {submitted.run_id} submitted: {submitted.url}")
    if wait:
        final = _wait(submitted.run_id, engine, settings)
        if final.state.lower() not in ("succeeded", "success"):
            raise typer.Exit(1)


def status_command(
    run_id: Annotated[str, typer.Argument(help="The run id submit printed.")],
    engine: Annotated[RemoteEngine, typer.Option("--engine", help="Which cluster engine.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report a submitted run's state."""
    from components.settings import get_settings

    status = _status(run_id, engine, get_settings())
    if as_json:
        typer.echo(status.model_dump_json())
    else:
        error = f" ({status.error})" if status.error else ""
        typer.echo(f"{status.run_id}: {status.state}{error} {status.url}")


@contextmanager
def _engine_errors() -> Iterator[None]:
    """An engine's SubmitError as the command's failure: its message, exit 1."""
    from components.orchestration.runs import SubmitError

    try:
        yield
    except SubmitError as exc:
        raise fail(str(exc), 1) from None


def _submit(
    pipeline: str,
    engine: RemoteEngine,
    params: dict[str, Any],
    settings: Settings,
    experiment: str | None,
    run_name: str | None,
) -> SubmittedRun:
    # Not the bridge's Engine.submit: that one adopts a run already named ``run_name``, where
    # the CLI starts another (KFP) or reports the clash (Argo).
    with _engine_errors():
        if engine is RemoteEngine.kfp:
            from pipelines.submit import submit_run

            return submit_run(pipeline, params, settings, experiment, run_name)
        from workflows.submit import submit_workflow

        return submit_workflow(pipeline, params, settings, run_name=run_name)


def _status(run_id: str, engine: RemoteEngine, settings: Settings) -> RunStatus:
    from bridge.engines import make_engine

    with _engine_errors():
        return make_engine(engine.value, settings).status(run_id)


def _wait(run_id: str, engine: RemoteEngine, settings: Settings) -> RunStatus:
    """Poll the run until it ends, printing each new state (one client for all the polls)."""

    def say(status: RunStatus) -> None:
        typer.echo(f"{run_id}: {status.state}")

    with _engine_errors():
        if engine is RemoteEngine.kfp:
            from pipelines.submit import wait_for_run

            return wait_for_run(run_id, settings, on_change=say)
        from workflows.submit import wait_for_workflow

        return wait_for_workflow(run_id, settings, on_change=say)
