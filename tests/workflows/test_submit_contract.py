"""Contract tests: ``submit_workflow``/``workflow_status`` through Hera's WorkflowsService against a
local server that checks every request (and answer) against the pinned Argo Server OpenAPI spec."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.registry import ParameterError, UnknownPipelineError
from testing.contract.fake_argo import FakeArgo
from testing.contract.openapi_server import OpenAPIContractServer
from workflows.submit import SubmitError, submit_workflow, wait_for_workflow, workflow_status

NAME = "document-ingestion"
TOKEN = "argo-test-token"
UI = "https://argo.example.test"
NAMESPACE = "ai-ml"


@pytest.fixture
def fake() -> FakeArgo:
    return FakeArgo()


@pytest.fixture
def server(schemas_dir: Path, fake: FakeArgo) -> Iterator[OpenAPIContractServer]:
    spec = schemas_dir / "argo-workflows-v4.0.5.swagger.json"
    with OpenAPIContractServer(
        spec, fake.handlers(), token=TOKEN, validate_responses=True
    ) as running:
        yield running


@pytest.fixture
def settings(clean_env: None, server: OpenAPIContractServer) -> Any:
    from components.settings import Settings

    return Settings(
        argo_host=server.url, argo_token=TOKEN, argo_ui_url=UI, argo_namespace=NAMESPACE
    )


def test_submit_from_the_template_then_follow_the_run(
    server: OpenAPIContractServer, fake: FakeArgo, settings: Any
) -> None:
    submitted = submit_workflow(NAME, {"source": "s3://docs/handbook", "prune": True}, settings)

    assert server.violations == []
    (request,) = server.requests
    assert request.operation_id == "WorkflowService_SubmitWorkflow"
    assert request.path == f"/api/v1/workflows/{NAMESPACE}/submit"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.body == {
        "namespace": NAMESPACE,
        "resourceKind": "WorkflowTemplate",
        "resourceName": NAME,
        "submitOptions": {
            "generateName": f"{NAME}-",
            "labels": "app.kubernetes.io/part-of=llm-workflows",
            "parameters": [
                "source=s3://docs/handbook",
                "collection=documents",
                "milvus_uri=",
                "prune=true",
            ],
        },
    }
    (run_id,) = fake.workflows
    assert submitted.run_id == run_id == f"{NAME}-00001"
    assert submitted.url == f"{UI}/workflows/{NAMESPACE}/{run_id}"
    assert submitted.state == "Pending"

    fake.phases[run_id] = iter(["Running", "Running", "Succeeded"])
    status = workflow_status(run_id, settings)
    assert (status.run_id, status.state, status.url, status.error) == (
        run_id,
        "Running",
        submitted.url,
        None,
    )
    seen: list[str] = []
    final = wait_for_workflow(run_id, settings, poll_s=0, on_change=lambda s: seen.append(s.state))
    assert final.state == "Succeeded" and seen == ["Running", "Succeeded"]
    gets = server.requests_for("WorkflowService_GetWorkflow")
    assert {r.path for r in gets} == {f"/api/v1/workflows/{NAMESPACE}/{run_id}"}
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in gets)
    assert server.violations == []


def test_a_run_name_is_used_as_given(
    server: OpenAPIContractServer, fake: FakeArgo, settings: Any
) -> None:
    submitted = submit_workflow(NAME, {"source": "/data/docs"}, settings, run_name="nightly-1")
    assert submitted.run_id == "nightly-1"
    (request,) = server.requests
    assert request.body["submitOptions"]["name"] == "nightly-1"
    assert "generateName" not in request.body["submitOptions"]
    assert server.violations == []


def test_a_failed_run_reports_its_message(
    server: OpenAPIContractServer, fake: FakeArgo, settings: Any
) -> None:
    run_id = submit_workflow(NAME, {"source": "/data/docs"}, settings).run_id
    fake.workflows[run_id]["status"] = {
        "phase": "Failed",
        "message": "child 'ingest-shard(0:0/1)' failed",
    }
    status = workflow_status(run_id, settings)
    assert (status.state, status.error) == ("Failed", "child 'ingest-shard(0:0/1)' failed")
    assert server.violations == []


def test_bad_parameters_are_refused_before_anything_is_sent(
    server: OpenAPIContractServer, settings: Any
) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'image'"):
        submit_workflow(NAME, {"source": "s3://docs", "image": "evil:latest"}, settings)
    with pytest.raises(ParameterError, match="source"):
        submit_workflow(NAME, {}, settings)
    with pytest.raises(
        UnknownPipelineError, match="registered: batch-inference, document-ingestion"
    ):
        submit_workflow("no-such-pipeline", {}, settings)
    assert server.requests == []


def test_401_names_the_status_and_the_server_message(
    server: OpenAPIContractServer, settings: Any
) -> None:
    wrong = settings.model_copy(update={"argo_token": None})
    with pytest.raises(SubmitError) as caught:
        submit_workflow(NAME, {"source": "s3://docs"}, wrong)
    message = str(caught.value)
    assert caught.value.status == 401
    assert "HTTP 401" in message
    assert "missing or wrong bearer token" in message
    assert "LLMW_ARGO_TOKEN" in message
    assert server.url in message
    assert len(server.requests) == 1


def test_401_injected_on_status(server: OpenAPIContractServer, settings: Any) -> None:
    run_id = submit_workflow(NAME, {"source": "s3://docs"}, settings).run_id
    server.fail_next("WorkflowService_GetWorkflow", 401, message="token expired")
    with pytest.raises(SubmitError) as caught:
        workflow_status(run_id, settings)
    message = str(caught.value)
    assert f"getting workflow {run_id!r}" in message
    assert "HTTP 401" in message and "token expired" in message


def test_409_when_the_run_name_is_taken(
    server: OpenAPIContractServer, fake: FakeArgo, settings: Any
) -> None:
    submit_workflow(NAME, {"source": "s3://docs"}, settings, run_name="nightly")
    with pytest.raises(SubmitError) as caught:
        submit_workflow(NAME, {"source": "s3://docs"}, settings, run_name="nightly")
    message = str(caught.value)
    assert caught.value.status == 409
    assert "submitting WorkflowTemplate 'document-ingestion'" in message
    assert "HTTP 409" in message and 'workflows.argoproj.io "nightly" already exists' in message
    assert "choose another run name" in message
    assert server.violations == []


def test_409_injected(server: OpenAPIContractServer, settings: Any) -> None:
    server.fail_next("WorkflowService_SubmitWorkflow", 409, message="conflict")
    with pytest.raises(SubmitError, match=r"HTTP 409: conflict"):
        submit_workflow(NAME, {"source": "s3://docs"}, settings)


def test_500_names_the_status_and_the_server_message(
    server: OpenAPIContractServer, settings: Any
) -> None:
    server.fail_next("WorkflowService_SubmitWorkflow", 500, message="etcd is down")
    with pytest.raises(SubmitError) as caught:
        submit_workflow(NAME, {"source": "s3://docs"}, settings)
    message = str(caught.value)
    assert caught.value.status == 500
    assert "HTTP 500" in message and "etcd is down" in message
    assert server.violations == []


def test_a_missing_template_is_named(
    server: OpenAPIContractServer, fake: FakeArgo, settings: Any
) -> None:
    fake.templates.clear()
    with pytest.raises(SubmitError) as caught:
        submit_workflow(NAME, {"source": "s3://docs"}, settings)
    message = str(caught.value)
    assert "HTTP 404" in message and "document-ingestion" in message
    assert f"not found in namespace {NAMESPACE}" in message


def test_status_of_an_unknown_run(server: OpenAPIContractServer, settings: Any) -> None:
    with pytest.raises(SubmitError) as caught:
        workflow_status("missing-run", settings)
    message = str(caught.value)
    assert "getting workflow 'missing-run'" in message
    assert 'HTTP 404: workflows.argoproj.io "missing-run" not found' in message


def test_unreachable_server(clean_env: None) -> None:
    from components.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(argo_host=f"http://127.0.0.1:{port}")
    with pytest.raises(SubmitError, match="cannot reach the Argo Server"):
        workflow_status("run-1", settings)
    with pytest.raises(SubmitError, match="cannot reach the Argo Server"):
        submit_workflow(NAME, {"source": "s3://docs"}, settings)


def test_a_host_without_scheme_is_refused(clean_env: None) -> None:
    from components.settings import Settings

    with pytest.raises(SubmitError, match="LLMW_ARGO_HOST must start with http"):
        workflow_status("run-1", Settings(argo_host="argo-server:2746"))
