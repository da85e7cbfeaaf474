"""`sensors.simulate` on sample MinIO notification records, calendar and webhook events: what
each sensor creates on each path, and every bad input that must start nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.orchestration.schema_validation import validate_document
from components.registry import JOBS
from components.settings import Settings
from sensors.render import WORKFLOWS_SCHEMA_FILE, documents
from testing.contract.fake_kfp import FakeKFP
from testing.contract.openapi_server import OpenAPIContractServer
from tests.sensors.conftest import encoded, sample, sample_json, simulated

PUT = "minio-put.json"
ID_PATTERN = r"^[0-9a-f]{32}$"


def record() -> dict[str, Any]:
    return copy.deepcopy(sample_json(PUT)["Records"][0])


def fired(result: Any) -> Any:
    assert result.reasons == [] and result.fires, (result.reasons, result.triggers)
    (outcome,) = result.triggers
    assert outcome.problems == []
    return outcome.creates


def request_of(result: Any) -> dict[str, Any]:
    creates = fired(result)
    assert creates["kind"] == "AI_PIPELINE request"
    return dict(creates["request"])


# Through the bridge (the shipped default)


@pytest.mark.parametrize("name", [PUT, "minio-cloudevent.json"])
def test_an_upload_is_ingested_alone(docs: Any, name: str) -> None:
    result = simulated(docs, "document-created", sample(name))
    request = request_of(result)
    event_id = result.event["id"]
    assert request == {
        "request_id": f"document-created-{event_id}",
        "pipeline": "document-ingestion",
        "parameters": {"source": "s3://documents/docs/guides/intro.md", "collection": "documents"},
    }
    assert fired(result)["subject"] == "ai.pipeline.trigger.document-ingestion"
    assert result.triggers[0].dead_letter == "ai.pipeline.deadletter.trigger_failed"


def test_the_request_id_is_the_event_id(docs: Any) -> None:
    cloud = simulated(docs, "document-created", sample("minio-cloudevent.json"))
    assert request_of(cloud)["request_id"] == "document-created-9b2f6c1e8a4d4e0f9c7b5a3d1e2f4a6b"
    # A sample without an id gets one from its content: the same sample, the same request.
    first = simulated(docs, "document-created", sample(PUT))
    again = simulated(docs, "document-created", json.dumps(sample_json(PUT), indent=4).encode())
    assert request_of(first)["request_id"] == request_of(again)["request_id"]
    assert first.event["id"] != cloud.event["id"]


def test_three_shapes_of_one_minio_record(docs: Any) -> None:
    one = record()
    shapes = [one, {"Records": [one]}, {"notification": [one]}]
    requests = [request_of(simulated(docs, "document-created", encoded(s))) for s in shapes]
    assert all(r["parameters"] == requests[0]["parameters"] for r in requests)


def test_a_multipart_upload_with_spaces_unicode_and_an_upper_case_suffix(docs: Any) -> None:
    result = simulated(docs, "document-created", sample("minio-multipart-record.json"))
    assert request_of(result)["parameters"]["source"] == "s3://documents/docs/reports/Q3 résumé.PDF"
    assert result.event["form"] == "MinIO record"


def test_the_nightly_reingest_prunes_the_whole_prefix(docs: Any) -> None:
    for name in ("calendar.json", "calendar-cloudevent.json"):
        request = request_of(simulated(docs, "nightly-reingest", sample(name)))
        assert request["parameters"] == {
            "source": "s3://documents/docs/",
            "collection": "documents",
            "prune": True,  # a JSON true, as `llmw trigger` sends it
        }


def test_a_ci_post_runs_the_pipeline_with_its_body(docs: Any) -> None:
    request = request_of(simulated(docs, "ci-document-ingestion", sample("webhook-ingest.json")))
    assert request["pipeline"] == "document-ingestion"
    assert request["parameters"] == sample_json("webhook-ingest.json")
    batch = request_of(simulated(docs, "ci-batch-inference", sample("webhook-batch-request.json")))
    assert batch["parameters"] == sample_json("webhook-batch-request.json")["body"]
    assert batch["request_id"].startswith("ci-batch-inference-")


def test_the_engine_setting_goes_into_the_request(clean_env: None, schemas_dir: Path) -> None:
    found = documents(Settings(events_engine="kfp"), schemas_dir)
    assert request_of(simulated(found, "document-created", sample(PUT)))["engine"] == "kfp"


def test_a_removal_removes_that_documents_rows(clean_env: None, schemas_dir: Path) -> None:
    found = documents(Settings(), schemas_dir)
    request = request_of(simulated(found, "document-removed", sample("minio-delete-record.json")))
    assert request["pipeline"] == "document-removal"
    assert request["parameters"] == {
        "uris": ["s3://documents/docs/old/notes.txt"],
        "collection": "documents",
    }
    # A removal is no upload, and an upload no removal.
    created = simulated(found, "document-created", sample("minio-delete-record.json"))
    assert not created.fires and "s3:ObjectCreated:*" in created.reasons[0]
    assert not simulated(found, "document-removed", sample(PUT)).fires


# Directly: a Workflow from the WorkflowTemplate, or a KFP run


def test_direct_argo_submits_a_valid_workflow_from_the_template(
    clean_env: None, schemas_dir: Path
) -> None:
    found = documents(Settings(events_trigger="direct"), schemas_dir)
    creates = fired(simulated(found, "document-created", sample(PUT)))
    workflow = creates["workflow"]
    assert validate_document(workflow, schemas_dir / WORKFLOWS_SCHEMA_FILE) == []
    assert workflow["metadata"]["generateName"] == "document-ingestion-"
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "document-ingestion"}
    assert workflow["spec"]["arguments"]["parameters"] == [
        {"name": "source", "value": "s3://documents/docs/guides/intro.md"},
        {"name": "collection", "value": "documents"},
    ]
    nightly = fired(simulated(found, "nightly-reingest", sample("calendar.json")))["workflow"]
    assert {"name": "prune", "value": "true"} in nightly["spec"]["arguments"]["parameters"]


def test_direct_argo_maps_a_ci_body_by_name_with_defaults(
    clean_env: None, schemas_dir: Path
) -> None:
    found = documents(Settings(events_trigger="direct"), schemas_dir)
    body = {"source": "s3://documents/docs/", "prune": True, "unknown": "dropped"}
    workflow = fired(simulated(found, "ci-document-ingestion", encoded(body)))["workflow"]
    assert workflow["spec"]["arguments"]["parameters"] == [
        {"name": "source", "value": "s3://documents/docs/"},
        {"name": "collection", "value": "documents"},
        {"name": "milvus_uri", "value": ""},
        {"name": "prune", "value": "true"},
    ]


def test_direct_argo_removal_passes_the_uris_as_json_text(
    clean_env: None, schemas_dir: Path
) -> None:
    found = documents(Settings(events_trigger="direct"), schemas_dir)
    workflow = fired(simulated(found, "document-removed", sample("minio-delete-record.json")))
    arguments = workflow["workflow"]["spec"]["arguments"]["parameters"]
    assert arguments[0] == {"name": "uris", "value": '["s3://documents/docs/old/notes.txt"]'}


def test_direct_kfp_creates_a_run_the_kfp_api_accepts(clean_env: None, schemas_dir: Path) -> None:
    fake = FakeKFP()
    for name in JOBS:  # uploaded beforehand, as LLMW_EVENTS_KFP_PIPELINE_IDS says
        fake.add_pipeline(f"pipeline-{name}", name)
    spec = schemas_dir / "kfp-api-v2beta1.swagger.json"
    with OpenAPIContractServer(spec, fake.handlers(), token="s3cret") as server:
        settings = Settings(
            events_trigger="direct",
            events_engine="kfp",
            kfp_host=server.url,
            events_kfp_pipeline_ids={name: f"pipeline-{name}" for name in JOBS},
            events_kfp_experiment_id="exp-7",
        )
        found = documents(settings, schemas_dir)
        for sensor, name in [
            ("document-created", PUT),
            ("nightly-reingest", "calendar.json"),
            ("ci-batch-inference", "webhook-batch-request.json"),
        ]:
            run = fired(simulated(found, sensor, sample(name)))
            assert run["headers"]["Authorization"] == "<Secret llmw-kfp-auth, key Authorization>"
            headers = {**run["headers"], "Authorization": "Bearer s3cret"}  # what the Secret holds
            answer = httpx.request(run["method"], run["url"], headers=headers, json=run["body"])
            assert answer.status_code == 200, answer.text
        assert server.violations == []
        bodies = [r.body for r in server.requests_for("RunService_CreateRun")]
    assert bodies[1]["runtime_config"]["parameters"]["prune"] is True
    assert bodies[1]["pipeline_version_reference"] == {"pipeline_id": "pipeline-document-ingestion"}
    assert bodies[2]["runtime_config"]["parameters"]["shards"] == 4
    assert all(body["experiment_id"] == "exp-7" for body in bodies)


# Bad input: nothing fires, and the simulation says why


def _mutated(change: Any) -> bytes:
    one = record()
    change(one)
    return encoded(one)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda r: r["s3"]["object"].update(key="archive/old.md"), "outside the EventSource"),
        (lambda r: r["s3"]["bucket"].update(name="scratch"), "listens to bucket 'documents'"),
        (lambda r: r.update(eventName="s3:ObjectAccessed:Get"), "listens to s3:ObjectCreated"),
        (lambda r: r["s3"]["object"].update(key="docs/logo.png"), "does not match '(?i)("),
        (lambda r: r["s3"]["object"].update(key="docs/"), "does not match '(?i)("),
        (lambda r: r["s3"]["object"].pop("key"), "object.key: missing"),
        (lambda r: r["s3"].pop("bucket"), "bucket.name: missing"),
        (lambda r: r.pop("eventName"), "eventName: missing"),
        (lambda r: r["s3"]["object"].update(key='docs/a"b.md'), "which is refused"),
        (lambda r: r["s3"]["object"].update(key="docs/a\\b.md"), "which is refused"),
        (lambda r: r["s3"]["object"].update(key="docs/a.md\n"), "which is refused"),
    ],
)
def test_minio_records_that_start_nothing(docs: Any, change: Any, why: str) -> None:
    result = simulated(docs, "document-created", _mutated(change))
    assert not result.fires and result.triggers == []
    assert any(why in reason for reason in result.reasons), result.reasons


def test_a_cloud_event_outside_the_prefix_is_caught_by_the_sensors_filter(docs: Any) -> None:
    event = sample_json("minio-cloudevent.json")
    event["data"]["notification"][0]["s3"]["object"]["key"] = "archive/old.md"
    result = simulated(docs, "document-created", encoded(event))
    assert result.reasons == [
        "filter: notification.0.s3.object.key: 'archive/old.md' does not match '^docs/'"
    ]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda e: e.update(source="llmw-calendar"), "comes from llmw-calendar/document-created"),
        (lambda e: e.update(subject="document-removed"), "comes from llmw-minio/document-removed"),
        (lambda e: e.pop("data"), "has no data"),
        (lambda e: e.update(id=""), "has no id"),
        (lambda e: e.update(datacontenttype="application/xml"), "sensor reads JSON"),
        (lambda e: e["data"].update(notification=[]), "notification.0.s3.bucket.name: missing"),
    ],
)
def test_cloud_events_that_start_nothing(docs: Any, change: Any, why: str) -> None:
    event = sample_json("minio-cloudevent.json")
    change(event)
    result = simulated(docs, "document-created", encoded(event))
    assert not result.fires
    assert any(why in reason for reason in result.reasons), result.reasons


def test_several_records_in_one_notification_are_one_event(docs: Any) -> None:
    second = record()
    second["s3"]["object"]["key"] = "docs/second.md"
    result = simulated(docs, "document-created", encoded({"Records": [record(), second]}))
    assert request_of(result)["parameters"]["source"].endswith("/intro.md")
    assert "holds 2 records" in result.notes[0]


def test_an_event_the_eventbus_cannot_carry(docs: Any) -> None:
    one = record()
    one["s3"]["object"]["userMetadata"] = {"x-amz-meta-pad": "x" * (1024 * 1024)}
    result = simulated(docs, "document-created", encoded(one))
    assert not result.fires and "the EventBus carries at most" in result.reasons[0]


def test_a_calendar_event_without_its_time(docs: Any) -> None:
    result = simulated(docs, "nightly-reingest", encoded({"metadata": {}}))
    assert result.reasons == ["filter: eventTime: missing (the event has no such field)"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"source": "s3://d/", "image": "evil:latest"}, "which is refused"),
        ({"source": "s3://d/", "nested": [{"Service_Account": "admin"}]}, "which is refused"),
        ({"source": "s3://d/", "NODE-SELECTOR": {"k": "v"}}, "which is refused"),
        ({"prune": True}, "body.source: missing"),
        (["s3://d/"], "does not match '^\\\\s*\\\\{'"),
        ("s3://d/", "does not match '^\\\\s*\\\\{'"),
        ({"source": "s3://d/", "pad": "x" * 20_000}, "over the webhook's maxPayloadSize"),
    ],
)
def test_webhook_bodies_that_start_nothing(docs: Any, body: Any, why: str) -> None:
    result = simulated(docs, "ci-document-ingestion", encoded(body))
    assert not result.fires
    assert any(why in reason for reason in result.reasons), result.reasons


def test_a_forbidden_key_starts_nothing_on_any_path(clean_env: None, schemas_dir: Path) -> None:
    body = encoded({"source": "s3://d/", "env": [{"name": "X", "value": "1"}]})
    for overrides in ({}, {"events_trigger": "direct"}):
        found = documents(Settings(**overrides), schemas_dir)
        assert not simulated(found, "ci-document-ingestion", body).fires


def test_parameters_the_pipeline_refuses_are_problems(docs: Any) -> None:
    body = encoded({"source": "s3://d/", "colection": "typo", "prune": "sometimes"})
    result = simulated(docs, "ci-document-ingestion", body)
    (outcome,) = result.triggers
    assert outcome.fires and not result.fires
    assert "unknown parameter 'colection'" in outcome.problems[0]
    assert "prune" in outcome.problems[0]


def test_a_sample_that_is_not_an_event_of_the_kind(docs: Any) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        simulated(docs, "document-created", b"{not json")
    with pytest.raises(ValueError, match="not a MinIO record"):
        simulated(docs, "document-created", encoded({"hello": "world"}))
