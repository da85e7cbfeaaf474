"""The strict schema check: catches misspelt fields and wrong types, accepts what Argo accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from components.orchestration.schema_validation import (
    SchemaViolationError,
    assert_valid,
    strict_schema,
    validate_document,
)

ARGO = "argo-workflows-v4.0.5.schema.json"
EVENTS = "argo-events-v1.9.11.schema.json"


def workflow_template(**template: Any) -> dict[str, Any]:
    main = {"name": "main", "container": {"image": "busybox", "command": ["true"]}, **template}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {"name": "t", "labels": {"any.label/key": "v"}},
        "spec": {"entrypoint": "main", "templates": [main]},
    }


def test_a_valid_document_passes(schemas_dir: Path) -> None:
    assert validate_document(workflow_template(), schemas_dir / ARGO) == []


def test_plain_schema_lets_a_misspelt_field_through(schemas_dir: Path) -> None:
    """Why the strict check exists: the pinned schema, as published, accepts ``imagee``."""
    from jsonschema import Draft202012Validator

    raw = json.loads((schemas_dir / ARGO).read_text())
    root = {**raw, "$ref": "#/definitions/io.argoproj.workflow.v1alpha1.WorkflowTemplate"}
    del root["oneOf"]
    doc = workflow_template()
    doc["spec"]["templates"][0]["container"]["imagee"] = "typo"
    assert list(Draft202012Validator(root).iter_errors(doc)) == []


def test_strict_check_catches_a_misspelt_field_and_a_wrong_type(schemas_dir: Path) -> None:
    doc = workflow_template(parallelism="four")
    doc["spec"]["templates"][0]["container"]["imagee"] = "typo"
    doc["spec"]["entrypointt"] = "main"
    errors = validate_document(doc, schemas_dir / ARGO)
    assert errors == [
        "spec.entrypointt: additional property not allowed",
        "spec.templates[0].container.imagee: additional property not allowed",
        "spec.templates[0].parallelism: 'four' is not of type 'integer'",
    ]
    with pytest.raises(SchemaViolationError) as caught:
        assert_valid(doc, schemas_dir / ARGO)
    assert caught.value.errors == errors
    assert "WorkflowTemplate t violates the schema (3 errors)" in str(caught.value)
    assert "spec.templates[0].container.imagee" in str(caught.value)


def test_int_or_string_and_quantity_are_widened(schemas_dir: Path) -> None:
    for limit in (3, "3"):
        doc = workflow_template(retryStrategy={"limit": limit, "backoff": {"factor": 2}})
        doc["spec"]["templates"][0]["container"]["resources"] = {
            "limits": {"cpu": 1, "memory": "1Gi", "amd.com/gpu": "1"},
            "requests": {"cpu": 0.5},
        }
        assert validate_document(doc, schemas_dir / ARGO) == []
    bad = workflow_template(retryStrategy={"limit": {"n": 3}})
    assert validate_document(bad, schemas_dir / ARGO) == [
        "spec.templates[0].retryStrategy.limit: {'n': 3} is not of type 'integer', 'string'"
    ]
    bad = workflow_template()
    bad["spec"]["templates"][0]["container"]["resources"] = {"limits": {"cpu": [1]}}
    assert validate_document(bad, schemas_dir / ARGO) == [
        "spec.templates[0].container.resources.limits.cpu: [1] is not of type 'string', 'number'"
    ]


def test_maps_stay_open(schemas_dir: Path) -> None:
    doc = workflow_template(nodeSelector={"kubernetes.io/hostname": "drizzt", "any": "thing"})
    doc["metadata"]["annotations"] = {"whatever.example/one": "1"}
    assert validate_document(doc, schemas_dir / ARGO) == []


def test_the_definition_is_chosen_by_kind(schemas_dir: Path) -> None:
    doc = workflow_template()
    # A field of Workflow's status is no WorkflowTemplate field: kind decides.
    workflow = copy.deepcopy(doc)
    workflow["kind"] = "Workflow"
    workflow["status"] = {"phase": "Running"}
    assert validate_document(workflow, schemas_dir / ARGO) == []
    doc["status"] = {"phase": "Running"}
    assert validate_document(doc, schemas_dir / ARGO) == ["status: additional property not allowed"]
    doc["kind"] = "Pipeline"
    (error,) = validate_document(doc, schemas_dir / ARGO)
    assert error.startswith("kind: 'Pipeline' is not defined in " + ARGO)
    assert "WorkflowTemplate" in error
    del doc["kind"]
    assert validate_document(doc, schemas_dir / ARGO)[0].startswith("kind: missing")


def test_wrong_api_version_is_refused(schemas_dir: Path) -> None:
    doc = workflow_template()
    doc["apiVersion"] = "argoproj.io/v1"
    assert validate_document(doc, schemas_dir / ARGO) == [
        "apiVersion: 'argoproj.io/v1alpha1' was expected"
    ]


def test_argo_events_sensor(schemas_dir: Path) -> None:
    sensor: dict[str, Any] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Sensor",
        "metadata": {"name": "ingest-on-upload"},
        "spec": {
            "dependencies": [
                {"name": "upload", "eventSourceName": "minio", "eventName": "documents"}
            ],
            "triggers": [
                {
                    "template": {
                        "name": "ingest",
                        "argoWorkflow": {
                            "operation": "submit",
                            "source": {"resource": {"kind": "Workflow", "anything": ["goes"]}},
                        },
                    }
                }
            ],
        },
    }
    assert validate_document(sensor, schemas_dir / EVENTS) == []
    sensor["spec"]["dependencies"][0]["eventSourceNmae"] = "typo"
    sensor["spec"]["triggers"][0]["template"]["argoWorkflow"]["operation"] = 1
    assert validate_document(sensor, schemas_dir / EVENTS) == [
        "spec.dependencies[0].eventSourceNmae: additional property not allowed",
        "spec.triggers[0].template.argoWorkflow.operation: 1 is not of type 'string'",
    ]


def test_prepared_schema_is_cached_per_file(schemas_dir: Path) -> None:
    assert strict_schema(schemas_dir / ARGO) is strict_schema(schemas_dir / ARGO)
    assert strict_schema(schemas_dir / ARGO) is not strict_schema(schemas_dir / EVENTS)
    kinds = strict_schema(schemas_dir / ARGO).kinds
    assert kinds["WorkflowTemplate"] == "io.argoproj.workflow.v1alpha1.WorkflowTemplate"
    assert (
        strict_schema(schemas_dir / EVENTS).kinds["Sensor"] == "io.argoproj.events.v1alpha1.Sensor"
    )
