"""Submit registered pipelines to Kubeflow Pipelines through ``kfp.Client``, and follow runs.

Endpoint, token, namespace and UI address come from settings (``LLMW_KFP_*``). Parameters are
checked against the job's model before anything is sent. Every failure of the API (HTTP errors,
refused connections, TLS problems) becomes a SubmitError whose message names the endpoint, the
HTTP status and the server's own message.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import kfp
import urllib3
from kfp_server_api.exceptions import ApiException

from components.orchestration.runs import RunStatus, SubmitError, SubmittedRun, follow
from components.settings import Settings
from pipelines.compiler import SUFFIX, compile_text
from pipelines.registry import pipeline_arguments

TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
HINTS = {
    401: "the KFP API refused the credentials: check LLMW_KFP_TOKEN",
    403: "the token is not allowed to do this in namespace {namespace} (LLMW_KFP_NAMESPACE)",
    404: "not found",
    409: "it conflicts with an existing resource",
}
T = TypeVar("T")


class _Client(kfp.Client):
    """``kfp.Client`` whose health check on creation is one request, not five over 25 seconds:
    a wrong token or a down server is reported at once."""

    def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
        return self._healthz_api.healthz_service_get_healthz()


def run_url(run_id: str, settings: Settings) -> str:
    """The run's page in the Kubeflow UI."""
    return f"{settings.kfp_ui_url.rstrip('/')}/#/runs/details/{run_id}"


def _server_message(exc: ApiException) -> str:
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    if not body:
        return str(exc.reason or "no message")
    try:
        data = json.loads(body)
    except ValueError:
        return str(body).strip()[:500]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)
    return str(data)


@contextlib.contextmanager
def _api(action: str, settings: Settings) -> Iterator[None]:
    """Turn whatever the KFP client raises into a SubmitError naming the action and status."""
    where = f"{action} at {settings.kfp_host}"
    try:
        yield
    except SubmitError:
        raise
    except ApiException as exc:
        if not exc.status:  # the client's own wrapping of TLS and transport errors
            raise SubmitError(f"{where} failed: {exc.reason}") from None
        hint = HINTS.get(exc.status, "")
        hint = f" ({hint.format(namespace=settings.kfp_namespace)})" if hint else ""
        raise SubmitError(
            f"{where} failed: HTTP {exc.status} {exc.reason or ''}".rstrip()
            + f": {_server_message(exc)}{hint}"
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SubmitError(f"{where} failed: cannot reach the KFP API: {exc}") from None


def _quiet(call: Callable[[], T]) -> T:
    """kfp.Client prints links and warns about versions; the CLI prints its own output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        return call()


def make_client(settings: Settings) -> kfp.Client:
    """A client for ``settings.kfp_host`` with the bearer token; checks the API's health."""
    token = settings.kfp_token.get_secret_value() if settings.kfp_token else None
    with _api("connecting to the KFP API", settings):
        return _quiet(
            lambda: _Client(
                host=settings.kfp_host, existing_token=token, namespace=settings.kfp_namespace
            )
        )


def submit_run(
    name: str,
    params: dict[str, Any],
    settings: Settings,
    experiment: str | None = None,
    run_name: str | None = None,
    reuse: bool = False,
) -> SubmittedRun:
    """Compile pipeline ``name`` and start a run of it in ``experiment`` (default: the
    pipeline's name), which is created when missing. Returns the run id and its UI link.

    With ``reuse`` (and a ``run_name``), a run of that display name already in the experiment is
    returned instead of starting another: the bridge's retries are idempotent this way.

    Raises ParameterError/UnknownPipelineError before anything is sent, SubmitError when the
    API refuses or cannot be reached.
    """
    arguments = pipeline_arguments(name, params)
    text = compile_text(name, settings)
    experiment_name = experiment or name
    display_name = run_name or f"{name} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    client = make_client(settings)
    with tempfile.TemporaryDirectory(prefix="llmw-submit-") as tmp:
        package = Path(tmp) / f"{name}{SUFFIX}"
        package.write_text(text, encoding="utf-8")
        with _api(f"getting or creating experiment {experiment_name!r}", settings):
            # create_experiment looks the name up first and creates it only when missing.
            found = _quiet(lambda: client.create_experiment(name=experiment_name))
        experiment_id = str(found.experiment_id)
        if reuse and run_name:
            existing = _find_run(client, experiment_id, run_name, settings)
            if existing is not None:
                return existing
        with _api(f"creating a run of {name!r}", settings):
            result = _quiet(
                lambda: client.create_run_from_pipeline_package(
                    str(package),
                    arguments=arguments,
                    run_name=display_name,
                    experiment_id=experiment_id,
                )
            )
    run = result.run_info
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
    with _api(f"looking up run {display_name!r}", settings):
        found = _quiet(
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
    with _api(f"getting run {run_id!r}", settings):
        run = _quiet(lambda: client.get_run(run_id))
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
