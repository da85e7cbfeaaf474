"""Contract tests: ``submit_run``/``run_status`` through the real kfp.Client against a local server
that checks every request (and every answer) against the pinned KFP v2beta1 OpenAPI spec: the
pipeline uploaded once per content as a version named by its hash, runs of that version."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp
import pytest
import yaml

from components.registry import JOBS, ParameterError, UnknownPipelineError
from pipelines.compiler import compile_text
from pipelines.pipeline_versions import content_version
from pipelines.submit import SubmitError, run_status, submit_run, wait_for_run
from testing.contract.fake_kfp import FakeKFP
from testing.contract.openapi_server import ContractRequest, OpenAPIContractServer

NAME = "document-ingestion"
TOKEN = "kfp-test-token"
UI = "https://kubeflow.example.test"


@pytest.fixture
def fake() -> FakeKFP:
    return FakeKFP()


@pytest.fixture
def server(
    schemas_dir: Path, fake: FakeKFP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[OpenAPIContractServer]:
    # kfp.Client reads (and in multi-user mode writes) a context file in the home folder.
    monkeypatch.setattr(kfp.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json"))
    spec = schemas_dir / "kfp-api-v2beta1.swagger.json"
    with OpenAPIContractServer(
        spec, fake.handlers(), token=TOKEN, validate_responses=True
    ) as running:
        yield running


@pytest.fixture
def settings(clean_env: None, server: OpenAPIContractServer) -> Any:
    from components.settings import Settings

    return Settings(kfp_host=server.url, kfp_token=TOKEN, kfp_ui_url=UI)


def operations(server: OpenAPIContractServer) -> list[str]:
    return [r.operation_id for r in server.requests]


FIRST_SUBMISSION = [
    "HealthzService_GetHealthz",
    "ExperimentService_ListExperiments",
    "ExperimentService_CreateExperiment",
    "PipelineService_ListPipelines",
    "UploadPipeline",
    "UploadPipelineVersion",
    "RunService_CreateRun",
]


def version_of(fake: FakeKFP, run: dict[str, Any]) -> dict[str, Any]:
    """The pipeline version a run was started from."""
    reference = run["pipeline_version_reference"]
    version = fake.versions[reference["pipeline_version_id"]]
    assert version["pipeline_id"] == reference["pipeline_id"]
    return version


def test_submit_creates_the_missing_experiment_and_starts_the_run(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    submitted = submit_run(
        NAME, {"source": "s3://docs/handbook", "prune": True}, settings, "nightly", "run-1"
    )

    assert server.violations == []
    assert operations(server) == FIRST_SUBMISSION
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in server.requests)
    (experiment,) = fake.experiments.values()
    assert experiment["display_name"] == "nightly"
    (run,) = fake.runs.values()
    assert submitted.run_id == run["run_id"]
    assert submitted.url == f"{UI}/#/runs/details/{run['run_id']}"
    assert submitted.experiment_id == experiment["experiment_id"] == run["experiment_id"]
    assert submitted.state == "PENDING"
    assert run["display_name"] == "run-1"
    # Parameters as validated (None left out, so the pipeline's default applies).
    assert run["runtime_config"]["parameters"] == {
        "source": "s3://docs/handbook",
        "collection": "documents",
        "prune": True,
    }
    # The run is of the version named by the compiled content's hash, in the job's pipeline
    # (which KFP created with a first version of its own, named like it).
    assert "pipeline_spec" not in run
    version = version_of(fake, run)
    assert version["display_name"] == content_version(compile_text(NAME, settings))
    (pipeline,) = fake.pipelines.values()
    assert (pipeline["display_name"], pipeline["description"]) == (NAME, JOBS[NAME].description)
    assert "namespace" not in pipeline  # single-user KFP: a shared pipeline
    names = sorted(v["display_name"] for v in fake.versions.values())
    assert names == sorted([NAME, version["display_name"]])
    # The compiled pipeline and its Kubernetes platform config are the version's.
    sent = version["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == NAME
    executors = sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "secretAsEnv" in executors["exec-ingest-shard"]


def test_the_same_content_runs_the_version_already_uploaded(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    first = submit_run(NAME, {"source": "s3://docs/a"}, settings, "nightly", None)
    server.requests.clear()
    second = submit_run(NAME, {"source": "s3://docs/b"}, settings, "nightly", None)

    assert server.violations == []
    assert operations(server) == [
        "HealthzService_GetHealthz",
        "ExperimentService_ListExperiments",
        "PipelineService_ListPipelines",
        "PipelineService_ListPipelineVersions",
        "RunService_CreateRun",
    ]
    (listing,) = server.requests_for("PipelineService_ListPipelineVersions")
    predicates = json.loads(listing.query["filter"][0])["predicates"]
    assert predicates[0]["stringValue"] == content_version(compile_text(NAME, settings))
    runs = [fake.runs[first.run_id], fake.runs[second.run_id]]
    assert version_of(fake, runs[0]) is version_of(fake, runs[1])
    assert [r["runtime_config"]["parameters"]["source"] for r in runs] == [
        "s3://docs/a",
        "s3://docs/b",
    ]
    assert len(fake.versions) == 2  # KFP's first version and the content's


def test_changed_content_is_a_new_version_of_the_same_pipeline(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    moved = settings.model_copy(update={"component_image": "registry.lab/llmw:next"})
    server.requests.clear()
    submitted = submit_run(NAME, {"source": "s3://docs"}, moved, None, None)

    assert server.violations == []
    assert "UploadPipeline" not in operations(server)
    (upload,) = server.requests_for("UploadPipelineVersion")
    (pipeline_id,) = fake.pipelines
    assert upload.query["pipelineid"] == [pipeline_id]
    version = version_of(fake, fake.runs[submitted.run_id])
    assert version["display_name"] == content_version(compile_text(NAME, moved))
    assert version["display_name"] != content_version(compile_text(NAME, settings))
    assert len(fake.versions) == 3


def test_a_version_uploaded_by_a_racing_submitter_is_used(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    submit_run(NAME, {"source": "s3://docs"}, settings, None, None)  # the pipeline exists
    moved = settings.model_copy(update={"component_image": "registry.lab/llmw:next"})
    name = content_version(compile_text(NAME, moved))

    def racing(request: ContractRequest) -> tuple[int, Any]:
        fake.upload_version(request)  # the other submitter's upload lands first
        return 409, {"code": 6, "message": f"pipeline version {name!r} already exists"}

    server.handle("UploadPipelineVersion", racing)
    submitted = submit_run(NAME, {"source": "s3://docs"}, moved, None, None)
    assert server.violations == []
    assert version_of(fake, fake.runs[submitted.run_id])["display_name"] == name
    assert operations(server)[-3:] == [
        "UploadPipelineVersion",
        "PipelineService_ListPipelineVersions",
        "RunService_CreateRun",
    ]


def test_a_refused_upload_names_the_version_and_the_status(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    server.fail_next("UploadPipelineVersion", 500, message="object store is down")
    with pytest.raises(SubmitError) as caught:
        submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    message = str(caught.value)
    version = content_version(compile_text(NAME, settings))
    assert f"uploading pipeline version {version!r}" in message
    assert "HTTP 500" in message and "object store is down" in message
    assert caught.value.status == 500
    assert fake.runs == {}
    assert server.violations == []


def test_submit_reuses_an_existing_experiment(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    existing = fake.add_experiment(NAME)
    submitted = submit_run(NAME, {"source": "s3://docs"}, settings, None, None)

    assert server.violations == []
    assert "ExperimentService_CreateExperiment" not in operations(server)
    assert submitted.experiment_id == existing
    (run,) = fake.runs.values()
    assert run["experiment_id"] == existing
    assert run["display_name"].startswith(f"{NAME} ")
    (listing,) = server.requests_for("ExperimentService_ListExperiments")
    predicates = json.loads(listing.query["filter"][0])["predicates"]
    assert predicates == [{"operation": 1, "key": "display_name", "stringValue": NAME}]


def test_bad_parameters_are_refused_before_anything_is_sent(
    server: OpenAPIContractServer, settings: Any
) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'gpu'"):
        submit_run(NAME, {"source": "s3://docs", "gpu": "all"}, settings, None, None)
    with pytest.raises(
        UnknownPipelineError, match="registered: batch-inference, document-ingestion"
    ):
        submit_run("no-such-pipeline", {}, settings, None, None)
    assert server.requests == []


def test_401_names_the_status_and_the_server_message(
    server: OpenAPIContractServer, settings: Any
) -> None:
    wrong = settings.model_copy(update={"kfp_token": None})
    with pytest.raises(SubmitError) as caught:
        submit_run(NAME, {"source": "s3://docs"}, wrong, None, None)
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "missing or wrong bearer token" in message
    assert "LLMW_KFP_TOKEN" in message
    assert server.url in message
    assert len(server.requests) == 1  # one health check, no retry loop


def test_409_on_experiment_creation(server: OpenAPIContractServer, settings: Any) -> None:
    server.fail_next("ExperimentService_CreateExperiment", 409, message="experiment exists")
    with pytest.raises(SubmitError) as caught:
        submit_run(NAME, {"source": "s3://docs"}, settings, "race", None)
    message = str(caught.value)
    assert "experiment 'race'" in message
    assert "HTTP 409" in message and "experiment exists" in message
    assert server.requests_for("RunService_CreateRun") == []
    assert server.violations == []


def test_500_on_run_creation(server: OpenAPIContractServer, settings: Any) -> None:
    server.fail_next("RunService_CreateRun", 500, message="database is down")
    with pytest.raises(SubmitError) as caught:
        submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    message = str(caught.value)
    assert "creating a run of 'document-ingestion'" in message
    assert "HTTP 500" in message and "database is down" in message
    assert server.violations == []


def test_unreachable_server(clean_env: None) -> None:
    from components.settings import Settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(kfp_host=f"http://127.0.0.1:{port}")
    with pytest.raises(SubmitError, match="cannot reach the KFP API"):
        run_status("run-1", settings)


def test_status_and_wait(server: OpenAPIContractServer, fake: FakeKFP, settings: Any) -> None:
    submitted = submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    run_id = submitted.run_id
    fake.states[run_id] = iter(["RUNNING", "RUNNING", "SUCCEEDED"])
    seen: list[str] = []

    first = run_status(run_id, settings)
    assert (first.run_id, first.state, first.url, first.error) == (
        run_id,
        "RUNNING",
        f"{UI}/#/runs/details/{run_id}",
        None,
    )
    final = wait_for_run(run_id, settings, poll_s=0, on_change=lambda s: seen.append(s.state))
    assert final.state == "SUCCEEDED"
    assert seen == ["RUNNING", "SUCCEEDED"]

    fake.runs[run_id]["error"] = {"code": 13, "message": "pod evicted"}
    fake.states[run_id] = iter(["FAILED"])
    failed = run_status(run_id, settings)
    assert (failed.state, failed.error) == ("FAILED", "pod evicted")
    assert server.violations == []


def test_status_of_an_unknown_run(server: OpenAPIContractServer, settings: Any) -> None:
    with pytest.raises(SubmitError) as caught:
        run_status("run-missing", settings)
    message = str(caught.value)
    assert "getting run 'run-missing'" in message
    assert "HTTP 404" in message and "Run run-missing not found" in message


def test_compiled_package_is_what_gets_uploaded(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    (run,) = fake.runs.values()
    text = compile_text(NAME, settings)
    (upload,) = server.requests_for("UploadPipelineVersion")
    assert upload.body["uploadfile"].decode() == text
    spec, platform = yaml.safe_load_all(text)
    sent = version_of(fake, run)["pipeline_spec"]
    assert sent == {"pipeline_spec": spec, "platform_spec": platform}


def test_multi_user_namespace_scopes_the_experiment(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    team = settings.model_copy(update={"kfp_namespace": "team-a"})
    submit_run(NAME, {"source": "s3://docs"}, team, "shared", None)

    assert server.violations == []
    # With a namespace of its own the client skips the health check; "kubeflow" is KFP's default
    # and means single-user (no namespace sent).
    assert "HealthzService_GetHealthz" not in operations(server)
    (listing,) = server.requests_for("ExperimentService_ListExperiments")
    assert listing.query["namespace"] == ["team-a"]
    (created,) = server.requests_for("ExperimentService_CreateExperiment")
    assert created.body["namespace"] == "team-a"
    # The pipeline is the namespace's own, looked up there.
    (pipeline,) = fake.pipelines.values()
    assert pipeline["namespace"] == "team-a"
    (lookup,) = server.requests_for("PipelineService_ListPipelines")
    assert lookup.query["namespace"] == ["team-a"]


def test_reuse_returns_the_run_of_that_name_instead_of_starting_another(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    first = submit_run(NAME, {"source": "/data"}, settings, "bridge", "req-1-run", reuse=True)
    again = submit_run(NAME, {"source": "/data"}, settings, "bridge", "req-1-run", reuse=True)
    other = submit_run(NAME, {"source": "/data"}, settings, "bridge", "req-2-run", reuse=True)
    assert server.violations == []
    assert again.run_id == first.run_id != other.run_id
    assert len(fake.runs) == 2
    assert operations(server).count("RunService_ListRuns") == 3


def test_a_traced_submit_passes_the_traceparent_and_a_request_cannot(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    from opentelemetry import context as otel_context

    from components import tracing

    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    token = otel_context.attach(tracing.context_from(traceparent))  # the bridge's submit span
    try:
        traced = submit_run(NAME, {"source": "s3://docs/a"}, settings, None, None)
        with pytest.raises(ParameterError, match="traceparent"):
            submit_run(NAME, {"source": "s3://docs/a", "traceparent": "00-x"}, settings, None, None)
    finally:
        otel_context.detach(token)
    untraced = submit_run(NAME, {"source": "s3://docs/b"}, settings, None, None)

    assert server.violations == []
    assert len(fake.runs) == 2  # the refused one sent nothing
    assert fake.runs[traced.run_id]["runtime_config"]["parameters"]["traceparent"] == traceparent
    assert "traceparent" not in fake.runs[untraced.run_id]["runtime_config"]["parameters"]
