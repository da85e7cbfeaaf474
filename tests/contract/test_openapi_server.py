"""Tests of the OpenAPI contract-test server against the pinned KFP and Argo specs."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from components.settings import packaged_schemas_dir
from testing.contract.openapi_server import ContractRequest, OpenAPIContractServer, load_spec

SCHEMAS = packaged_schemas_dir()
KFP = SCHEMAS / "kfp-api-v2beta1.swagger.json"
ARGO = SCHEMAS / "argo-workflows-v4.0.5.swagger.json"

RUN: dict[str, Any] = {
    "display_name": "ingest-docs",
    "pipeline_version_reference": {"pipeline_id": "p-1", "pipeline_version_id": "v-1"},
    "runtime_config": {"parameters": {"batch_size": 32, "source": "s3://docs"}},
    "service_account": "pipeline-runner",
}
WORKFLOW: dict[str, Any] = {
    "metadata": {"generateName": "batch-infer-", "labels": {"app": "llmw"}},
    "spec": {
        "entrypoint": "main",
        "activeDeadlineSeconds": 3600,
        "templates": [
            {
                "name": "main",
                "retryStrategy": {"limit": 2},  # IntOrString as a number
                "container": {
                    "image": "alpine:3",
                    "resources": {"limits": {"cpu": 2, "memory": "1Gi"}},  # Quantity
                },
            }
        ],
    },
}


def echo(status: int = 200, body: Any = None) -> Any:
    def handler(request: ContractRequest) -> tuple[int, Any]:
        return status, body if body is not None else {}

    return handler


def test_routing_prefers_literal_segments() -> None:
    argo = load_spec(ARGO)
    kfp = load_spec(KFP)
    routed = {
        ("POST", "/api/v1/workflows/argo/submit"): ("WorkflowService_SubmitWorkflow", {}),
        ("GET", "/api/v1/workflows/argo/submit"): (
            "WorkflowService_GetWorkflow",
            {"name": "submit"},
        ),
        ("POST", "/api/v1/workflows/argo/lint"): ("WorkflowService_LintWorkflow", {}),
        ("PUT", "/api/v1/workflows/argo/wf-1/stop"): ("WorkflowService_StopWorkflow", {}),
        ("GET", "/api/v1/workflows/argo/wf-1/pod-1/log"): (
            "WorkflowService_PodLogs",
            {"podName": "pod-1"},
        ),
    }
    for (method, path), (operation_id, params) in routed.items():
        found = argo.route(method, path)
        assert not isinstance(found, str), found
        route, path_params = found
        assert route.operation_id == operation_id
        assert path_params["namespace"] == "argo"
        assert params.items() <= path_params.items()
    # Same method, both templates match: the literal "names" segment wins over {pipeline_id}.
    found = kfp.route("GET", "/apis/v2beta1/pipelines/names/versions")
    assert not isinstance(found, str)
    assert found[0].operation_id == "PipelineService_GetPipelineByName"
    assert found[1] == {"name": "versions"}
    # Mixed segments ("{run_id}:archive") and dotted parameter names.
    found = kfp.route("POST", "/apis/v2beta1/runs/r%2D1:archive")
    assert not isinstance(found, str)
    assert (found[0].operation_id, found[1]) == ("RunService_ArchiveRun", {"run_id": "r-1"})
    found = kfp.route("PATCH", "/apis/v2beta1/pipelines/p-1")
    assert not isinstance(found, str)
    assert found[1] == {"pipeline.pipeline_id": "p-1"}
    assert isinstance(kfp.route("PUT", "/apis/v2beta1/runs"), str)
    assert load_spec(ARGO) is argo  # cached per spec path


def test_kfp_create_run_is_routed_and_recorded() -> None:
    created = {**RUN, "run_id": "run-1", "state": "PENDING", "created_at": "2026-01-01T00:00:00Z"}
    with OpenAPIContractServer(
        KFP, {"RunService_CreateRun": echo(200, created)}, validate_responses=True
    ) as server:
        response = httpx.post(
            f"{server.url}/apis/v2beta1/runs", params={"experiment_id": "exp-1"}, json=RUN
        )
    assert response.status_code == 200, response.text
    assert response.json()["run_id"] == "run-1"
    assert server.violations == []
    (request,) = server.requests
    assert request.operation_id == "RunService_CreateRun"
    assert (request.method, request.path) == ("POST", "/apis/v2beta1/runs")
    assert request.query == {"experiment_id": ["exp-1"]}
    assert request.body == RUN
    assert request.headers["content-type"] == "application/json"
    assert server.requests_for("RunService_CreateRun") == [request]


def test_get_run_path_params_and_response_validation() -> None:
    with OpenAPIContractServer(KFP, validate_responses=True) as server:
        server.handle("RunService_GetRun", echo(200, {"run_id": "r-1", "stat": "RUNNING"}))
        response = httpx.get(f"{server.url}/apis/v2beta1/runs/r-1")
    assert response.status_code == 200
    assert server.requests[0].path_params == {"run_id": "r-1"}
    assert len(server.violations) == 1
    assert "RunService_GetRun" in server.violations[0]
    assert "'stat' was unexpected" in server.violations[0]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**RUN, "dispaly_name": "x"}, "'dispaly_name' was unexpected"),
        ({**RUN, "pipeline_version_reference": {"pipline_id": "p"}}, "'pipline_id'"),
        ([RUN], "is not of type 'object'"),
        ({**RUN, "display_name": 7}, "7 is not of type 'string'"),
    ],
)
def test_invalid_body_is_a_violation(body: Any, fragment: str) -> None:
    with OpenAPIContractServer(KFP, {"RunService_CreateRun": echo()}) as server:
        response = httpx.post(f"{server.url}/apis/v2beta1/runs", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == 3
    assert fragment in response.json()["message"]
    assert len(server.violations) == 1
    assert fragment in server.violations[0]
    assert "RunService_CreateRun" in server.violations[0]


def test_missing_body_and_wrong_content_type_are_violations() -> None:
    with OpenAPIContractServer(KFP, {"ExperimentService_CreateExperiment": echo()}) as server:
        url = f"{server.url}/apis/v2beta1/experiments"
        assert httpx.post(url).status_code == 400
        assert httpx.post(url, content=b"{not json", headers=_json()).status_code == 400
        text = {"content-type": "text/plain"}
        assert httpx.post(url, content=b'{"display_name": "e"}', headers=text).status_code == 400
        assert httpx.post(url, json={"display_name": "e"}).status_code == 200
    assert len(server.violations) == 3
    assert "required request body is missing" in server.violations[0]
    assert "not valid JSON" in server.violations[1]
    assert "application/json" in server.violations[2]


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def test_query_parameters_are_checked() -> None:
    kfp_handlers = {"ExperimentService_ListExperiments": echo(200, {"experiments": []})}
    argo_handlers = {
        "WorkflowService_ListWorkflows": echo(),
        "WorkflowService_DeleteWorkflow": echo(),
    }
    with (
        OpenAPIContractServer(KFP, kfp_handlers) as kfp,
        OpenAPIContractServer(ARGO, argo_handlers) as argo,
    ):
        experiments = f"{kfp.url}/apis/v2beta1/experiments"
        ok = {"page_size": "10", "filter": '{"predicates": []}', "namespace": "team-a"}
        assert httpx.get(experiments, params=ok).status_code == 200
        wrong_type = httpx.get(experiments, params={"page_size": "ten"})
        undeclared = httpx.get(experiments, params={"pageSize": "10"})
        workflows = f"{argo.url}/api/v1/workflows/argo"
        labels = {"listOptions.labelSelector": "app=llmw", "listOptions.limit": "50"}
        assert httpx.get(workflows, params=labels).status_code == 200
        bad_int64 = httpx.get(workflows, params={"listOptions.limit": "lots"})
        bad_bool = httpx.get(workflows, params={"listOptions.watch": "yes"})
        dry_run = httpx.QueryParams(
            [("deleteOptions.dryRun", "All"), ("deleteOptions.dryRun", "x")]
        )
        assert httpx.delete(f"{workflows}/wf-1", params=dry_run).status_code == 200
        repeated = httpx.get(workflows, params=[("fields", "a"), ("fields", "b")])
    assert wrong_type.status_code == undeclared.status_code == 400
    assert bad_int64.status_code == bad_bool.status_code == repeated.status_code == 400
    assert wrong_type.json()["code"] == 3
    assert "'page_size' is not an integer" in kfp.violations[0]
    assert "undeclared query parameter 'pageSize'" in kfp.violations[1]
    assert len(kfp.violations) == 2
    assert len(argo.violations) == 3
    assert "'listOptions.limit' is not an integer" in argo.violations[0]
    assert "'listOptions.watch' is not a boolean" in argo.violations[1]
    assert "'fields' given 2 times" in argo.violations[2]


def test_argo_submit_and_create_with_widened_types() -> None:
    submit = {
        "namespace": "argo",
        "resourceKind": "WorkflowTemplate",
        "resourceName": "batch-infer",
        "submitOptions": {"generateName": "bi-", "parameters": ["model=m"], "labels": "a=b"},
    }
    handlers = {
        "WorkflowService_SubmitWorkflow": echo(200, {**WORKFLOW, "metadata": {"name": "bi-x"}}),
        "WorkflowService_CreateWorkflow": echo(200, WORKFLOW),
    }
    with OpenAPIContractServer(ARGO, handlers, validate_responses=True) as server:
        url = f"{server.url}/api/v1/workflows/argo"
        assert httpx.post(f"{url}/submit", json=submit).status_code == 200
        assert httpx.post(url, json={"namespace": "argo", "workflow": WORKFLOW}).status_code == 200
        bad = {"workflow": {**WORKFLOW, "spec": {**WORKFLOW["spec"], "entryPoint": "main"}}}
        assert httpx.post(url, json=bad).status_code == 400
        not_int = {"workflow": {**WORKFLOW, "spec": {**WORKFLOW["spec"], "priority": "high"}}}
        assert httpx.post(url, json=not_int).status_code == 400
    assert [r.operation_id for r in server.requests][:2] == [
        "WorkflowService_SubmitWorkflow",
        "WorkflowService_CreateWorkflow",
    ]
    assert len(server.violations) == 2
    assert "'entryPoint' was unexpected" in server.violations[0]


def test_int64_fields_accept_strings_or_integers() -> None:
    def recurring(interval: Any) -> dict[str, Any]:
        schedule = {"periodic_schedule": {"interval_second": interval}}
        return {"display_name": "nightly", "trigger": schedule, "max_concurrency": "1"}

    with OpenAPIContractServer(KFP, {"RecurringRunService_CreateRecurringRun": echo()}) as server:
        url = f"{server.url}/apis/v2beta1/recurringruns"
        statuses = [httpx.post(url, json=recurring(v)).status_code for v in (3600, "3600", "soon")]
    assert statuses == [200, 200, 400]
    assert "interval_second" in server.violations[0]


def test_multipart_upload() -> None:
    handlers = {"UploadPipeline": echo(200, {"pipeline_id": "p-1", "display_name": "ingest"})}
    with OpenAPIContractServer(KFP, handlers, validate_responses=True) as server:
        url = f"{server.url}/apis/v2beta1/pipelines/upload"
        spec = {"uploadfile": ("ingest.yaml", b"pipelineInfo: {}")}
        ok = httpx.post(url, params={"name": "ingest"}, files=spec)
        misnamed = httpx.post(url, files={"file": ("ingest.yaml", b"{}")})
        as_json = httpx.post(url, json={"uploadfile": "..."})
    assert (ok.status_code, misnamed.status_code, as_json.status_code) == (200, 400, 400)
    assert server.requests[0].body == {"uploadfile": b"pipelineInfo: {}"}
    assert "required form field 'uploadfile' is missing" in server.violations[0]
    assert "multipart/form-data" in server.violations[1]


def test_token_auth_answers_401_without_a_violation() -> None:
    handlers = {"RunService_GetRun": echo(200, {"run_id": "r-1"})}
    with OpenAPIContractServer(KFP, handlers, token="s3cret") as server:
        url = f"{server.url}/apis/v2beta1/runs/r-1"
        missing = httpx.get(url)
        wrong = httpx.get(url, headers={"Authorization": "Bearer nope"})
        good = httpx.get(url, headers={"Authorization": "Bearer s3cret"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"] == "unauthenticated"
    assert missing.json()["code"] == 16
    assert good.status_code == 200
    assert server.violations == []
    assert len(server.requests) == 3
    assert server.requests[2].headers["authorization"] == "Bearer s3cret"


def test_fail_next_then_success() -> None:
    with OpenAPIContractServer(KFP, {"RunService_GetRun": echo(200, {"run_id": "r"})}) as server:
        server.fail_next("RunService_GetRun", 500, message="database is down")
        server.fail_next("RunService_GetRun", 503, times=2)
        url = f"{server.url}/apis/v2beta1/runs/r"
        statuses = [httpx.get(url).status_code for _ in range(4)]
        archive = httpx.post(f"{url}:archive")  # other operations are unaffected (no handler)
    assert statuses == [500, 503, 503, 200]
    assert archive.status_code == 501
    assert server.violations == ["no handler registered for operation RunService_ArchiveRun"]
    with pytest.raises(KeyError):
        server.fail_next("RunService_NoSuchThing", 500)


def test_fail_next_error_body_is_grpc_gateway_style() -> None:
    with OpenAPIContractServer(KFP) as server:
        server.fail_next("ExperimentService_GetExperiment", 404, message="experiment not found")
        response = httpx.get(f"{server.url}/apis/v2beta1/experiments/e-1")
    assert response.status_code == 404
    assert response.json() == {
        "error": "experiment not found",
        "code": 5,
        "message": "experiment not found",
    }
    assert server.violations == []


def test_unknown_path_or_method_is_a_404_violation() -> None:
    with OpenAPIContractServer(ARGO) as server:
        unknown = httpx.get(f"{server.url}/api/v1/no-such-thing")
        wrong_method = httpx.patch(f"{server.url}/api/v1/workflows/argo/wf-1")
    assert unknown.status_code == wrong_method.status_code == 404
    assert unknown.json()["code"] == 5
    assert server.requests == []
    assert len(server.violations) == 2
    assert "/api/v1/no-such-thing" in server.violations[0]
    assert "method not in spec" in server.violations[1]


def test_unknown_operation_handler_is_rejected() -> None:
    with pytest.raises(KeyError, match="RunService_Launch"):
        OpenAPIContractServer(KFP, {"RunService_Launch": echo()})


def test_concurrent_requests_are_all_recorded() -> None:
    with OpenAPIContractServer(KFP, {"RunService_GetRun": echo()}) as server:
        urls = [f"{server.url}/apis/v2beta1/runs/r-{i}" for i in range(24)]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda url: httpx.get(url).status_code, urls))
    assert statuses == [200] * 24
    assert sorted(r.path_params["run_id"] for r in server.requests) == sorted(
        f"r-{i}" for i in range(24)
    )


def test_socket_is_closed_after_exit() -> None:
    with OpenAPIContractServer(KFP) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert httpx.get(f"{server.url}/apis/v2beta1/healthz").status_code == 501
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
