"""`llmw events list` and `llmw events simulate`: output, exit codes, light imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.llmw.test_ingest_cli import HEAVY, REPO, llmw

EVENTS = Path(__file__).parent / "events"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return llmw("events", *args, env=env)


@pytest.mark.parametrize("args", [["events", "--help"], ["events", "simulate", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    heavy = (*HEAVY, "hera", "kfp", "nats", "jsonschema", "sensors")
    code = (
        "import sys; from typer.testing import CliRunner; from llmw.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_list_names_each_sensor_with_its_source_and_trigger() -> None:
    listed = run("list", "--json", LLMW_EVENTS_TRIGGER_BY_SENSOR='{"nightly-reingest": "direct"}')
    assert listed.returncode == 0, listed.stderr
    rows = {row["sensor"]: row for row in json.loads(listed.stdout)}
    created = rows["document-created"]
    assert created["event_source"] == "llmw-minio" and created["source_type"] == "minio"
    assert created["listens"] == "s3:ObjectCreated:* under s3://documents/docs/"
    assert (created["path"], created["kind"]) == ("bridge", "nats")
    assert created["target"] == "publish ai.pipeline.trigger.document-ingestion"
    nightly = rows["nightly-reingest"]
    assert (nightly["path"], nightly["kind"]) == ("direct", "argoWorkflow")
    assert nightly["target"] == "submit from WorkflowTemplate document-ingestion"
    assert rows["ci-batch-inference"]["listens"].startswith("POST :12000/batch-inference")
    text = run("list")
    assert text.returncode == 0
    assert "document-created: minio llmw-minio/document-created" in text.stdout


def _simulate(*args: str, **env: str) -> tuple[int, Any, str]:
    done = run("simulate", *args, "--json", **env)
    return done.returncode, json.loads(done.stdout) if done.stdout else None, done.stderr


def test_simulate_prints_the_request_and_the_bridges_verdict() -> None:
    code, out, _ = _simulate("document-created", str(EVENTS / "minio-put.json"))
    assert code == 0
    (trigger,) = out["triggers"]
    assert trigger["fires"] and trigger["creates"]["kind"] == "AI_PIPELINE request"
    assert trigger["creates"]["request"]["parameters"]["source"].endswith("guides/intro.md")
    assert trigger["bridge"] is not None  # the bridge's own decoder judged the JSON
    text = run("simulate", "document-created", str(EVENTS / "minio-put.json"))
    assert "fires document-ingestion-via-bridge" in text.stdout
    assert "ai.pipeline.deadletter.trigger_failed" in text.stdout


def test_simulate_says_why_nothing_fires(tmp_path: Path) -> None:
    event = json.loads((EVENTS / "minio-put.json").read_text())
    event["Records"][0]["s3"]["object"]["key"] = "docs/logo.png"
    path = tmp_path / "png.json"
    path.write_text(json.dumps(event))
    code, out, _ = _simulate("document-created", str(path))
    assert code == 3 and not out["fires"] and out["triggers"] == []
    assert out["reasons"][0].startswith("filter: notification.0.s3.object.key: 'docs/logo.png'")
    text = run("simulate", "document-created", str(path))
    assert text.returncode == 3 and "nothing fires:" in text.stdout


def test_simulate_a_direct_sensor_shows_the_workflow() -> None:
    env = {"LLMW_EVENTS_TRIGGER": "direct"}
    code, out, _ = _simulate("nightly-reingest", str(EVENTS / "calendar.json"), **env)
    assert code == 0
    workflow = out["triggers"][0]["creates"]["workflow"]
    assert workflow["spec"]["workflowTemplateRef"] == {"name": "document-ingestion"}
    assert out["triggers"][0]["bridge"] is None
    published = run(
        "simulate", "nightly-reingest", str(EVENTS / "calendar.json"), "--publish", **env
    )
    assert published.returncode == 2 and "directly" in published.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-sensor", str(EVENTS / "calendar.json")], "unknown sensor 'no-such-sensor'"),
        (["document-created", "/no/such/file.json"], "/no/such/file.json"),
        (["document-created", str(EVENTS / "calendar.json")], "not a MinIO record"),
    ],
)
def test_simulate_bad_input_exits_2(args: list[str], message: str) -> None:
    done = run("simulate", *args)
    assert done.returncode == 2 and message in done.stderr


def test_simulate_a_skipped_sensor_says_why(without_removal_job: None) -> None:
    from typer.testing import CliRunner

    from llmw.cli import app

    args = ["events", "simulate", "document-removed", str(EVENTS / "minio-delete-record.json")]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 2 and "not registered" in done.output


def test_bad_settings_exit_2() -> None:
    done = run("list", LLMW_EVENTS_SCHEDULE="every night")
    assert done.returncode == 2 and "LLMW_EVENTS_SCHEDULE" in done.stderr
