"""Contract tests: ``submit_run``/``run_status`` through the real kfp.Client against a local server
that checks every request against the pinned KFP v2beta1 OpenAPI spec."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp
import pytest
import yaml

from components.registry import ParameterError, UnknownPipelineError
from pipelines.submit import SubmitError, run_status, submit_run, wait_for_run
from testing.contract.fake_kfp import FakeKFP
from testing.contract.openapi_server import OpenAPIContractServer

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


def test_submit_creates_the_missing_experiment_and_starts_the_run(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    submitted = submit_run(
        NAME, {"source": "s3://docs/handbook", "prune": True}, settings, "nightly", "run-1"
    )

    assert server.violations == []
    assert operations(server) == [
        "HealthzService_GetHealthz",
        "ExperimentService_ListExperiments",
        "ExperimentService_CreateExperiment",
        "RunService_CreateRun",
    ]
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
    # The compiled pipeline and its Kubernetes platform config travel in the run.
    sent = run["pipeline_spec"]
    assert sent["pipeline_spec"]["pipelineInfo"]["name"] == NAME
    executors = sent["platform_spec"]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "secretAsEnv" in executors["exec-ingest-shard"]


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


def test_compiled_package_is_what_gets_sent(
    server: OpenAPIContractServer, fake: FakeKFP, settings: Any
) -> None:
    from pipelines.compiler import compile_text

    submit_run(NAME, {"source": "s3://docs"}, settings, None, None)
    (run,) = fake.runs.values()
    spec, platform = yaml.safe_load_all(compile_text(NAME, settings))
    assert run["pipeline_spec"] == {"pipeline_spec": spec, "platform_spec": platform}


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
