"""A ``kfp.Client`` for the settings' KFP API, and the API's failures as SubmitErrors.

Endpoint, token and namespace come from settings (``LLMW_KFP_*``). Every failure of the API (HTTP
errors, refused connections, TLS problems) becomes a SubmitError whose message names the action,
the endpoint, the HTTP status and the server's own message.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import kfp
import kfp_server_api
import urllib3
from kfp_server_api.exceptions import ApiException

from components.orchestration.runs import SubmitError
from components.settings import Settings

HINTS = {
    401: "the KFP API refused the credentials: check LLMW_KFP_TOKEN",
    403: "the token is not allowed to do this in namespace {namespace} (LLMW_KFP_NAMESPACE)",
    404: "not found",
    409: "it conflicts with an existing resource",
}
T = TypeVar("T")


def check_health(settings: Settings) -> Any:
    """One request to the API's health endpoint (the token's and the server's first test),
    through the public generated API client; ApiException when it fails."""
    config = kfp_server_api.Configuration(host=settings.kfp_host.rstrip("/"))
    if settings.kfp_token is not None:
        config.api_key["authorization"] = settings.kfp_token.get_secret_value()
        config.api_key_prefix["authorization"] = "Bearer"
    with kfp_server_api.ApiClient(config) as api_client:
        return kfp_server_api.HealthzServiceApi(api_client).healthz_service_get_healthz()


class _Client(kfp.Client):
    """``kfp.Client`` whose health check on creation (its public ``get_kfp_healthz``, which it
    calls in single-user mode) is one request, not five over 25 seconds: a wrong token or a down
    server is reported at once, with the server's answer."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.llmw_settings = settings  # before kfp.Client.__init__, which checks health
        super().__init__(**kwargs)

    def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
        return check_health(self.llmw_settings)


def server_message(exc: ApiException) -> str:
    """What the server said, from an ApiException's body (grpc-gateway's JSON, or text)."""
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
def api_call(action: str, settings: Settings) -> Iterator[None]:
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
            + f": {server_message(exc)}{hint}",
            exc.status,
        ) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SubmitError(f"{where} failed: cannot reach the KFP API: {exc}") from None


def quiet(call: Callable[[], T]) -> T:
    """kfp.Client prints links and warns about versions; the CLI prints its own output."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        return call()


def make_client(settings: Settings) -> kfp.Client:
    """A client for ``settings.kfp_host`` with the bearer token; checks the API's health."""
    token = settings.kfp_token.get_secret_value() if settings.kfp_token else None
    with api_call("connecting to the KFP API", settings):
        return quiet(
            lambda: _Client(
                settings,
                host=settings.kfp_host,
                existing_token=token,
                namespace=settings.kfp_namespace,
            )
        )
