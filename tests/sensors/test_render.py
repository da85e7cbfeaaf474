"""Rendering the EventSources, Sensors and RBAC: goldens, determinism, strict validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.orchestration.schema_validation import SchemaViolationError, validate_document
from components.registry import JOBS
from components.settings import Settings
from sensors import render
from sensors.render import (
    RBAC_FILE,
    SCHEMA_FILE,
    WORKFLOWS_SCHEMA_FILE,
    build_documents,
    documents,
    render_all,
    render_texts,
    workflows_in,
)

REPO = Path(__file__).resolve().parents[2]
# With document-removal registered, its webhook sensor and the removal sensor come in too.
REMOVAL = "document-removal" in JOBS
ROLLOUT = "model-rollout" in JOBS  # its webhook sensor: CI rolls a model out
SHIPPED = [
    "llmw-calendar.eventsource.yaml",
    "llmw-ci-webhook.eventsource.yaml",
    "llmw-minio.eventsource.yaml",
    "ci-batch-inference.sensor.yaml",
    "ci-document-ingestion.sensor.yaml",
    *(["ci-document-removal.sensor.yaml"] if REMOVAL else []),
    *(["ci-model-rollout.sensor.yaml"] if ROLLOUT else []),
    "document-created.sensor.yaml",
    *(["document-removed.sensor.yaml"] if REMOVAL else []),
    "nightly-reingest.sensor.yaml",
    RBAC_FILE,
]
# Every way a sensor can be rendered: each path, each engine, each NATS login.
VARIANTS: dict[str, dict[str, Any]] = {
    "bridge": {},
    "bridge-kfp-token": {"events_engine": "kfp", "events_nats_auth": "token"},
    "direct-argo": {"events_trigger": "direct", "events_nats_auth": "basic"},
    "direct-kfp": {
        "events_trigger": "direct",
        "events_engine": "kfp",
        "events_kfp_pipeline_ids": {name: f"id-{name}" for name in [*JOBS, "document-removal"]},
        "events_kfp_experiment_id": "exp-1",
    },
}


def test_the_shipped_files(default_settings: Any, schemas_dir: Path) -> None:
    assert list(render_texts(default_settings, schemas_dir)) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_golden(name: str, default_settings: Any, schemas_dir: Path, golden: Any) -> None:
    golden(f"sensors/{name}", render_texts(default_settings, schemas_dir)[name])


@pytest.mark.parametrize("variant", ["direct-argo", "direct-kfp"])
def test_golden_direct(variant: str, clean_env: None, schemas_dir: Path, golden: Any) -> None:
    texts = render_texts(Settings(**VARIANTS[variant]), schemas_dir)
    for name in ("document-created.sensor.yaml", "ci-document-ingestion.sensor.yaml"):
        golden(f"sensors/{variant}/{name}", texts[name])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_document_is_strictly_valid(variant: str, clean_env: None, schemas_dir: Path) -> None:
    found = build_documents(Settings(**VARIANTS[variant]))
    assert "document-removed" in found.sensors  # with the job registered, it is rendered
    for document in [*found.event_sources.values(), *found.sensors.values()]:
        assert validate_document(document, schemas_dir / SCHEMA_FILE) == []
    workflows = [w for s in found.sensors.values() for w in workflows_in(s)]
    assert bool(workflows) == (variant == "direct-argo")
    for workflow in workflows:
        assert validate_document(workflow, schemas_dir / WORKFLOWS_SCHEMA_FILE) == []


def test_render_all_writes_under_sensors_and_parses_back(
    default_settings: Any, schemas_dir: Path, tmp_path: Path
) -> None:
    paths = render_all(tmp_path, default_settings, schemas_dir)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [f"sensors/{n}" for n in SHIPPED]
    found = documents(default_settings, schemas_dir)
    for path in paths[:-1]:
        name, kind = path.name.split(".")[:2]
        expected = found.event_sources if kind == "eventsource" else found.sensors
        assert yaml.safe_load(path.read_text()) == expected[name]
    assert list(yaml.safe_load_all(paths[-1].read_text())) == found.rbac


def _render_in_fresh_process(out: Path, seed: str) -> dict[str, bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    code = f"import pathlib, sensors.render as r; r.render_all(pathlib.Path({str(out)!r}))"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "PYTHONHASHSEED": seed},
        check=True,
        timeout=120,
    )
    return {p.name: p.read_bytes() for p in sorted((out / "sensors").iterdir())}


def test_byte_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    first = _render_in_fresh_process(tmp_path / "a", "1")
    second = _render_in_fresh_process(tmp_path / "b", "2")
    assert list(first) == sorted(SHIPPED)
    assert first == second


def test_a_violation_fails_loudly_and_writes_nothing(
    default_settings: Any, schemas_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = render.build_documents

    def misspelt(settings: Any = None) -> Any:
        found = real(settings)
        trigger = found.sensors["nightly-reingest"]["spec"]["triggers"][0]
        trigger["retryStrategy"]["stepps"] = 3
        return found

    monkeypatch.setattr(render, "build_documents", misspelt)
    with pytest.raises(SchemaViolationError, match=r"retryStrategy\.stepps: additional property"):
        render_all(tmp_path / "out", default_settings, schemas_dir)
    assert not (tmp_path / "out").exists()


def test_an_invalid_submitted_workflow_fails_too(
    clean_env: None, schemas_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = render.build_documents

    def broken(settings: Any = None) -> Any:
        found = real(settings)
        for sensor in found.sensors.values():
            for workflow in workflows_in(sensor):
                workflow["spec"]["workflowTemplateRef"]["nam"] = "x"
        return found

    monkeypatch.setattr(render, "build_documents", broken)
    with pytest.raises(SchemaViolationError, match=r"workflowTemplateRef\.nam"):
        documents(Settings(**VARIANTS["direct-argo"]), schemas_dir)


def test_a_missing_schema_is_named(default_settings: Any, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"set LLMW_SCHEMAS_DIR .* {SCHEMA_FILE}"):
        documents(default_settings, tmp_path)


def test_removal_sensor_skipped_until_its_job_is_registered(
    default_settings: Any, schemas_dir: Path, without_removal_job: None
) -> None:
    found = documents(default_settings, schemas_dir)
    assert "document-removed" not in found.sensors
    assert "not registered" in found.skipped["document-removed"]
    assert list(found.event_sources["llmw-minio"]["spec"]["minio"]) == ["document-created"]


def test_removal_sensor_with_its_job(default_settings: Any, schemas_dir: Path) -> None:
    found = documents(default_settings, schemas_dir)
    minio = found.event_sources["llmw-minio"]["spec"]["minio"]
    assert minio["document-removed"]["events"] == ["s3:ObjectRemoved:*"]
    assert minio["document-created"]["events"] == ["s3:ObjectCreated:*"]
    payload = found.sensors["document-removed"]["spec"]["triggers"][0]["template"]["nats"]
    assert payload["subject"] == "ai.pipeline.trigger.document-removal"
    assert not found.skipped
