"""Submit registered WorkflowTemplates to the Argo Server through Hera's WorkflowsService.

A run is submitted *from the template* (``POST /api/v1/workflows/{namespace}/submit`` with
``resourceKind: WorkflowTemplate``), so the cluster runs exactly the WorkflowTemplate that was
applied there (``llmw compile`` renders it; GitOps or ``kubectl apply`` installs it). The
template must exist in the namespace: a 404 says so. Parameters are checked against the job's
model before anything is sent and passed as ``name=value`` strings. Endpoint, token, namespace,
TLS verification and the UI address come from settings (``LLMW_ARGO_*``).

Every failure (HTTP errors, refused connections, TLS problems, a malformed answer) becomes a
SubmitError whose message names the action, the endpoint, the HTTP status and the server's own
message.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

import requests
from hera.exceptions import HeraException
from hera.workflows import WorkflowsService
from hera.workflows.models import SubmitOpts, Workflow, WorkflowSubmitRequest

from components.orchestration.runs import RunStatus, SubmitError, SubmittedRun, follow
from components.settings import Settings
from components.tracing import current_traceparent
from workflows.common import TRACEPARENT_PARAMETER
from workflows.registry import template_arguments

TERMINAL_STATES = frozenset({"Succeeded", "Failed", "Error"})
HINTS = {
    400: "the server refused the request",
    401: "the Argo Server refused the credentials: check LLMW_ARGO_TOKEN",
    403: "the token may not do this in namespace {namespace} (LLMW_ARGO_NAMESPACE)",
    404: "not found in namespace {namespace}",
    409: "a workflow with this name already exists: choose another run name",
}
_SERVER_MESSAGE = re.compile(r"status code (\d+) with message: `(.*)`\Z", re.DOTALL)
RUN_LABELS = "app.kubernetes.io/part-of=llm-workflows"
# The run's trace context on the Workflow's metadata, where an operator finds it (kubectl, the UI).
TRACEPARENT_ANNOTATION = "llmw.io/traceparent"


def run_url(run_id: str, settings: Settings) -> str:
    """The run's page in the Argo UI."""
    return f"{settings.argo_ui_url.rstrip('/')}/workflows/{settings.argo_namespace}/{run_id}"


def make_service(settings: Settings) -> WorkflowsService:
    """A WorkflowsService for ``settings.argo_host`` with the bearer token and namespace."""
    host = settings.argo_host
    if not host.startswith(("http://", "https://")):
        raise SubmitError(f"LLMW_ARGO_HOST must start with http:// or https://, got {host!r}")
    token = settings.argo_token.get_secret_value() if settings.argo_token else None
    return WorkflowsService(
        host=host.rstrip("/") + "/",
        token=token,
        namespace=settings.argo_namespace,
        verify_ssl=settings.argo_verify_tls,
    )


@contextlib.contextmanager
def _api(action: str, settings: Settings) -> Iterator[None]:
    """Turn whatever the Argo client raises into a SubmitError naming the action and status."""
    where = f"{action} at {settings.argo_host}"
    try:
        yield
    except SubmitError:
        raise
    except HeraException as exc:
        text = str(exc)
        found = _SERVER_MESSAGE.search(text)
        status = int(found.group(1)) if found else getattr(type(exc), "status_code", None)
        message = found.group(2) if found else text
        hint = HINTS.get(status or 0, "")
        hint = f" ({hint.format(namespace=settings.argo_namespace)})" if hint else ""
        raise SubmitError(
            f"{where} failed: HTTP {status}: {message or 'no message'}{hint}", status
        ) from None
    except requests.exceptions.SSLError as exc:
        raise SubmitError(
            f"{where} failed: TLS error (LLMW_ARGO_VERIFY_TLS=false skips verification): {exc}"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise SubmitError(f"{where} failed: cannot reach the Argo Server: {exc}") from None
    except (KeyError, ValueError) as exc:
        # A non-JSON error body, or one without a message, or an answer that is not a Workflow.
        raise SubmitError(f"{where} failed: unexpected answer from the server: {exc!r}") from None


def _state(workflow: Workflow) -> str:
    phase = workflow.status.phase if workflow.status is not None else None
    return str(phase or "Pending")


def submit_workflow(
    name: str,
    params: dict[str, Any],
    settings: Settings,
    run_name: str | None = None,
) -> SubmittedRun:
    """Start a run of WorkflowTemplate ``name`` with ``params``; its name is ``run_name`` or
    generated (``<name>-xxxxx``). Returns the run id (the Workflow's name) and its UI link.
    Inside a recorded span, the run carries its ``traceparent`` (the parameter its steps read,
    and an annotation for operators).

    Raises ParameterError/UnknownPipelineError before anything is sent, SubmitError when the
    server refuses or cannot be reached.
    """
    arguments = template_arguments(name, params)
    traceparent = current_traceparent()
    if traceparent:
        # Added after the job's parameters are checked: a request cannot set it.
        arguments[TRACEPARENT_PARAMETER] = traceparent
    options = SubmitOpts(
        parameters=[f"{key}={value}" for key, value in arguments.items()],
        labels=RUN_LABELS,
        annotations=f"{TRACEPARENT_ANNOTATION}={traceparent}" if traceparent else None,
        **({"name": run_name} if run_name else {"generate_name": f"{name}-"}),
    )
    request = WorkflowSubmitRequest(
        namespace=settings.argo_namespace,
        resource_kind="WorkflowTemplate",
        resource_name=name,
        submit_options=options,
    )
    service = make_service(settings)
    with service, _api(f"submitting WorkflowTemplate {name!r}", settings):
        workflow = service.submit_workflow(request, namespace=settings.argo_namespace)
        run_id = workflow.metadata.name
    if not run_id:
        raise SubmitError(f"submitting {name!r}: the server's answer names no workflow")
    return SubmittedRun(run_id=run_id, url=run_url(run_id, settings), state=_state(workflow))


def workflow_status(
    run_id: str, settings: Settings, service: WorkflowsService | None = None
) -> RunStatus:
    """A run's phase (Pending, Running, Succeeded, Failed, Error) and its message, if any."""
    own = service is None
    service = service or make_service(settings)
    try:
        with _api(f"getting workflow {run_id!r}", settings):
            workflow = service.get_workflow(run_id, namespace=settings.argo_namespace)
    finally:
        if own:
            service.close()
    state = _state(workflow)
    message = workflow.status.message if workflow.status is not None else None
    return RunStatus(
        run_id=workflow.metadata.name or run_id,
        state=state,
        url=run_url(run_id, settings),
        error=message if state in ("Failed", "Error") and message else None,
    )


def wait_for_workflow(
    run_id: str,
    settings: Settings,
    timeout_s: float | None = None,
    poll_s: float = 5.0,
    on_change: Callable[[RunStatus], None] | None = None,
) -> RunStatus:
    """Poll until the run ends; returns its last status. SubmitError after ``timeout_s``."""
    with make_service(settings) as service:
        return follow(
            lambda: workflow_status(run_id, settings, service),
            TERMINAL_STATES,
            timeout_s,
            poll_s,
            on_change,
        )
