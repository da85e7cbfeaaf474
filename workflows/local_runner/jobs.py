"""The registered jobs on argo-local: render a job's WorkflowTemplate and run it here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.exit_codes import EXIT_BAD_INPUT

from .model import LocalRunError
from .orchestrator import ArgoLocalRunner

ENV_PREFIX = "LLMW_"
DEFAULT_WORK_DIR = Path(".llmw/argo-local")

if TYPE_CHECKING:
    from components.settings import Settings


def run_local(
    name: str,
    params: dict[str, Any],
    settings: Settings | None = None,
    *,
    work_dir: Path | None = None,
    max_parallel: int = 1,
    max_backoff_s: float = 1.0,
    run_name: str | None = None,
    traceparent: str | None = None,
) -> dict[str, Any]:
    """Render WorkflowTemplate ``name`` and run it here with ``params``.

    ``params`` are checked against the job's model first (ParameterError, UnknownPipelineError).
    Every step sees this process's environment with its ``LLMW_*`` variables replaced by
    ``settings`` (when given; else inherited as they are). Returns ``{"report": <the
    entrypoint's report output, parsed>, "status", "workflow", "outputs", "nodes", "work_dir"}``;
    raises LocalRunError (with ``.run``, and ``.bad_input`` when the step that failed refused
    its input) when the workflow does not succeed — after the exit handler has run. Node folders
    and artifacts are kept under ``work_dir`` (default ``.llmw/argo-local``). ``traceparent``
    (else the current span's) is the run's ``traceparent`` parameter: the steps' spans join
    that trace.
    """
    from components.registry import get_job
    from components.settings import get_settings, settings_env
    from workflows.registry import template_arguments
    from workflows.render import render_template

    get_job(name)
    from components.tracing import current_traceparent
    from workflows.common import TRACEPARENT_PARAMETER

    arguments = template_arguments(name, params)
    arguments[TRACEPARENT_PARAMETER] = traceparent or current_traceparent() or ""
    document = render_template(name, settings or get_settings())
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    if settings is not None:
        env.update(settings_env(settings))
    else:
        env.update({k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)})
    runner = ArgoLocalRunner(
        document,
        work_dir=work_dir or DEFAULT_WORK_DIR,
        env=env,
        max_parallel=max_parallel,
        max_backoff_s=max_backoff_s,
        workflow_name=run_name,
    )
    run = runner.run(arguments)
    if run.phase != "Succeeded":
        failed = run.first_failure()
        bad_input = failed is not None and failed.exit_code == EXIT_BAD_INPUT
        message = f"{name} ({run.name}) {run.phase.lower()}: {run.message}"
        raise LocalRunError(message, run, bad_input=bad_input)
    summary = run.to_dict()
    raw = run.outputs.get("report")
    summary["report"] = json.loads(raw) if raw else None
    return summary
