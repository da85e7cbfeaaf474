"""The run's trace context on Argo: every WorkflowTemplate has a ``traceparent`` parameter that
each step container reads as ``$TRACEPARENT``; ``submit_workflow`` sets it (and an annotation)
inside a span; argo-local runs put the steps' spans in that trace."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context

from components import tracing
from testing.contract.fake_argo import FakeArgo
from testing.contract.openapi_server import OpenAPIContractServer
from testing.spans import OtlpReceiver
from workflows.local_runner import run_local
from workflows.registry import TEMPLATES
from workflows.render import render_template
from workflows.submit import submit_workflow

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TOKEN = "argo-test-token"


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_step_reads_the_runs_traceparent(name: str, default_settings: Any) -> None:
    spec = render_template(name, default_settings)["spec"]
    (declared,) = [p for p in spec["arguments"]["parameters"] if p["name"] == "traceparent"]
    assert declared["value"] == ""
    steps = [t for t in spec["templates"] if "script" in t or "container" in t]
    assert steps, name
    for template in steps:
        body = template.get("script") or template["container"]
        env = {e["name"]: e for e in body.get("env", [])}
        assert env.get("TRACEPARENT") == {
            "name": "TRACEPARENT",
            "value": "{{workflow.parameters.traceparent}}",
        }, f"{name}: step template {template['name']!r}"


@pytest.fixture
def argo(schemas_dir: Path, clean_env: None) -> Iterator[tuple[OpenAPIContractServer, Any]]:
    from components.settings import Settings

    spec = schemas_dir / "argo-workflows-v4.0.5.swagger.json"
    with OpenAPIContractServer(spec, FakeArgo().handlers(), token=TOKEN) as server:
        yield server, Settings(argo_host=server.url, argo_token=TOKEN)


@contextlib.contextmanager
def _in_trace() -> Iterator[None]:
    """The trace TRACEPARENT names, current (what the bridge's submit span is)."""
    token = otel_context.attach(tracing.context_from(TRACEPARENT))
    try:
        yield
    finally:
        otel_context.detach(token)


def test_submit_inside_a_trace_passes_it_as_argument_and_annotation(argo: Any) -> None:
    server, settings = argo
    with _in_trace():
        submit_workflow("document-ingestion", {"source": "s3://docs/handbook"}, settings)
    submit_workflow("document-ingestion", {"source": "s3://docs/handbook"}, settings)

    assert server.violations == []
    traced, untraced = (r.body["submitOptions"] for r in server.requests)
    assert f"traceparent={TRACEPARENT}" in traced["parameters"]
    assert traced["annotations"] == f"llmw.io/traceparent={TRACEPARENT}"
    assert not any(p.startswith("traceparent=") for p in untraced["parameters"])
    assert "annotations" not in untraced


def _removal(tmp_path: Path, **kwargs: Any) -> None:
    uris = [(tmp_path / "gone.md").as_uri()]
    params = {"uris": uris, "milvus_uri": str(tmp_path / "traced.db")}
    run_local("document-removal", params, work_dir=tmp_path / "argo-local", **kwargs)


@pytest.fixture
def receiver(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OtlpReceiver]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRACEPARENT", raising=False)
    with OtlpReceiver() as running:
        monkeypatch.setenv("LLMW_OTLP_ENDPOINT", running.endpoint)
        yield running


@pytest.mark.slow
def test_an_argo_local_run_with_the_parameter_puts_its_steps_in_that_trace(
    receiver: OtlpReceiver, tmp_path: Path
) -> None:
    _removal(tmp_path, traceparent=TRACEPARENT)
    (step,) = receiver.spans()
    assert (step.name, step.trace_id, step.parent_id) == ("remove documents", TRACE_ID, PARENT_ID)
    assert step.service == "llmw-step"


@pytest.mark.slow
def test_an_empty_parameter_keeps_the_runners_traceparent(
    receiver: OtlpReceiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local engine's worker sets $TRACEPARENT; the run's parameter stays "".
    monkeypatch.setenv("TRACEPARENT", TRACEPARENT)
    _removal(tmp_path)
    (step,) = receiver.spans()
    assert (step.trace_id, step.parent_id) == (TRACE_ID, PARENT_ID)
