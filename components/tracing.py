"""OpenTelemetry spans, off unless ``LLMW_OTLP_ENDPOINT`` is set.

One trace follows a request: ``llmw trigger`` opens it and puts its W3C ``traceparent`` in the
NATS headers; the bridge continues it (accepted, submitted, each status) and hands it to the run,
whose steps read it from the ``TRACEPARENT`` environment variable (the OpenTelemetry convention
for processes). With no endpoint configured no provider is installed: the API's tracer is a
no-op, and a span costs a few function calls.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from components.settings import Settings

TRACER_NAME = "llmw"
TRACEPARENT_ENV = "TRACEPARENT"
TRACEPARENT_HEADER = "traceparent"
_configured = threading.Lock()
_provider_set = False


def configure(settings: Settings, service: str) -> bool:
    """Install the SDK with an OTLP/HTTP exporter when ``settings.otlp_endpoint`` is set
    (once per process); False when tracing stays off."""
    if not settings.otlp_endpoint:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    endpoint = settings.otlp_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    return install_exporter(OTLPSpanExporter(endpoint=endpoint), service)


def install_exporter(exporter: SpanExporter, service: str, batch: bool = True) -> bool:
    """Make ``exporter`` receive this process's spans (the tests pass an in-memory one)."""
    global _provider_set
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    with _configured:
        if _provider_set:
            return True
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _provider_set = True
    return True


def flush() -> None:
    """Export what is buffered (before a short-lived process exits)."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def inject(carrier: dict[str, str] | None = None) -> dict[str, str]:
    """``carrier`` with the current context's ``traceparent`` (nothing added when none)."""
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's W3C ``traceparent``, or None outside any recorded span."""
    return inject().get(TRACEPARENT_HEADER)


def join_trace(traceparent: str) -> None:
    """In a step: make ``traceparent`` (the run's parameter) this process's ``$TRACEPARENT``; an
    empty one (an untraced run) leaves the inherited variable as it is (a local engine sets it)."""
    if traceparent:
        os.environ[TRACEPARENT_ENV] = traceparent


def context_from(traceparent: str | None) -> otel_context.Context:
    """The context a ``traceparent`` names (the empty context for None or a malformed one)."""
    if not traceparent:
        return otel_context.Context()
    return propagate.extract({TRACEPARENT_HEADER: traceparent})


def traceparent_in(headers: Mapping[str, str] | None) -> str | None:
    """The ``traceparent`` a NATS message's headers carry (names are case-insensitive)."""
    found = {k.lower(): v for k, v in (headers or {}).items()}
    return found.get(TRACEPARENT_HEADER) or None


def span_in(
    traceparent: str | None,
    name: str,
    attributes: Mapping[str, str] | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> AbstractContextManager[trace.Span]:
    """A span in the trace ``traceparent`` names (the root of a new trace when None)."""
    return tracer().start_as_current_span(
        name, context=context_from(traceparent), kind=kind, attributes=attributes
    )


@contextlib.contextmanager
def step_span(name: str, **attributes: str) -> Iterator[None]:
    """A span for one step of a run, the child of ``$TRACEPARENT`` when the run carries one."""
    parent = os.environ.get(TRACEPARENT_ENV)
    if not parent:
        yield
        return
    from components.settings import get_settings

    configure(get_settings(), "llmw-step")
    try:
        with span_in(parent, name, attributes):
            yield
    finally:
        flush()
