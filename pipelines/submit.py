"""Submit registered pipelines to Kubeflow Pipelines through ``kfp.Client``, and follow runs.

A submission runs the pipeline's version for its compiled content, uploaded once
(``pipelines.pipeline_versions``). Endpoint, token, namespace and UI address come from settings
(``LLMW_KFP_*``). Parameters are checked against the job's model before anything is sent. Every
failure of the API becomes a SubmitError naming the endpoint, the HTTP status and the server's
own message (``pipelines.kfp_client``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import kfp

from components.orchestration.runs import RunStatus, SubmitError, SubmittedRun, follow
from components.settings import Settings
from pipelines.compiler import compile_text
from pipelines.kfp_client import api_call, make_client, quiet
from pipelines.pipeline_versions import ensure_version
from pipelines.registry import pipeline_arguments, with_trace

__all__ = ["SubmitError", "run_status", "run_url", "submit_run", "wait_for_run"]

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})


def run_url(run_id: str, settings: Settings) -> str:
    """The run's page in the Kubeflow UI."""
    return f"{settings.kfp_ui_url.rstrip('/')}/#/runs/details/{run_id}"


def submit_run(
    name: str,
    params: dict[str, Any],
    settings: Settings,
    experiment: str | None = None,
    run_name: str | None = None,
    reuse: bool = False,
) -> SubmittedRun:
    """Compile pipeline ``name`` and start a run of the version holding that content (uploaded
    when new) in ``experiment`` (default: the pipeline's name), which is created when missing.
    Returns the run id and its UI link. Inside a recorded span, the run carries its
    ``traceparent`` (the parameter every step joins).

    With ``reuse`` (and a ``run_name``), a run of that display name already in the experiment is
    returned instead of starting another: the bridge's retries are idempotent this way.

    Raises ParameterError/UnknownPipelineError before anything is sent, SubmitError when the
    API refuses or cannot be reached.
    """
    arguments = with_trace(pipeline_arguments(name, params))
    text = compile_text(name, settings)
    experiment_name = experiment or name
    display_name = run_name or f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    client = make_client(settings)
    with api_call(f"getting or creating experiment {experiment_name!r}", settings):
        # create_experiment looks the name up first and creates it only when missing.
        found = quiet(lambda: client.create_experiment(name=experiment_name))
    experiment_id = str(found.experiment_id)
    if reuse and run_name:
        existing = _find_run(client, experiment_id, run_name, settings)
        if existing is not None:
            return existing
    version = ensure_version(client, name, text, settings)
    with api_call(f"creating a run of {name!r} (version {version.name})", settings):
        run = quiet(
            lambda: client.run_pipeline(
                experiment_id=experiment_id,
                job_name=display_name,
                params=arguments,
                pipeline_id=version.pipeline_id,
                version_id=version.version_id,
            )
        )
    return _submitted(run, experiment_id, settings)


def _submitted(run: Any, experiment_id: str, settings: Settings) -> SubmittedRun:
    """A run the API returned (created or found) as a SubmittedRun."""
    run_id = str(run.run_id)
    return SubmittedRun(
        run_id=run_id,
        url=run_url(run_id, settings),
        experiment_id=str(run.experiment_id or experiment_id),
        state=str(run.state or "PENDING"),
    )


def _find_run(
    client: kfp.Client, experiment_id: str, display_name: str, settings: Settings
) -> SubmittedRun | None:
    """The newest run of ``display_name`` in the experiment, if there is one."""
    predicate = {"key": "display_name", "operation": "EQUALS", "string_value": display_name}
    with api_call(f"looking up run {display_name!r}", settings):
        found = quiet(
            lambda: client.list_runs(
                experiment_id=experiment_id,
                filter=json.dumps({"predicates": [predicate]}),
                sort_by="created_at desc",
                page_size=1,
            )
        )
    runs = found.runs or []
    if not runs:
        return None
    run = runs[0]
    return _submitted(run, experiment_id, settings)


def run_status(run_id: str, settings: Settings, client: kfp.Client | None = None) -> RunStatus:
    """A run's state (PENDING, RUNNING, SUCCEEDED, FAILED, ...) and error message, if any."""
    client = client or make_client(settings)
    with api_call(f"getting run {run_id!r}", settings):
        run = quiet(lambda: client.get_run(run_id))
    error = getattr(run, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    return RunStatus(
        run_id=str(run.run_id or run_id),
        state=str(run.state or "RUNTIME_STATE_UNSPECIFIED"),
        url=run_url(run_id, settings),
        error=message or None,
    )


def wait_for_run(
    run_id: str,
    settings: Settings,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
    on_change: Callable[[RunStatus], None] | None = None,
) -> RunStatus:
    """Poll until the run ends; returns its last status. SubmitError after ``timeout_s``."""
    client = make_client(settings)
    return follow(
        lambda: run_status(run_id, settings, client), TERMINAL_STATES, timeout_s, poll_s, on_change
    )
