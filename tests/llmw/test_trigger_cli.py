"""`llmw trigger`: publish a request with its dedup header; --wait follows it to the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bridge.engines import run_name_for
from testing.nats_server import NatsServer
from testing.recording_engine import runs_by_name
from tests.llmw.test_ingest_cli import llmw


def test_wait_prints_each_status_until_the_run_succeeds(
    nats_server: NatsServer,
    start_bridge: Any,
    runs_dir: Path,
) -> None:
    start_bridge(run_s=0.3)
    env = {"LLMW_NATS_URL": nats_server.url}
    args = ["trigger", "document-ingestion", "-p", "source=examples/docs", "--engine", "argo"]
    result = llmw(*args, "--request-id", "cli-1", "--wait", "--timeout", "60", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "request cli-1 published on ai.pipeline.trigger.document-ingestion"
    assert [line.split()[1] for line in lines[1:]] == [
        "accepted",
        "submitted",
        "running",
        "succeeded",
    ]
    assert "test://" in lines[2]
    # The same request again: JetStream drops it (Nats-Msg-Id), --wait replays where it stands.
    again = llmw(*args, "--request-id", "cli-1", "--wait", "--json", env=env)
    assert again.returncode == 0, again.stderr
    events = [json.loads(line) for line in again.stdout.splitlines()]
    assert [e["state"] for e in events] == ["accepted", "submitted", "running", "succeeded"]
    assert runs_by_name(runs_dir) == {run_name_for("document-ingestion", "cli-1"): 1}


def test_a_failed_run_exits_1_and_a_rejected_request_exits_2(
    nats_server: NatsServer,
    start_bridge: Any,
    runs_dir: Path,
) -> None:
    start_bridge(failing_runs=frozenset({run_name_for("document-ingestion", "cli-2")}))
    env = {"LLMW_NATS_URL": nats_server.url}
    args = ["trigger", "document-ingestion", "--engine", "argo", "--wait", "--timeout", "60"]
    failed = llmw(*args, "-p", "source=examples/docs", "--request-id", "cli-2", env=env)
    assert failed.returncode == 1, failed.stderr
    assert failed.stdout.splitlines()[-1].endswith("(run_failed: step exploded)")
    # Valid parameters, so the CLI's own check lets it through, but over the bridge's 64 KiB
    # message limit: the bridge rejects it (under the id in its Nats-Msg-Id header).
    long_source = "source=s3://docs/" + "x" * (70 * 1024)
    rejected = llmw(*args, "-p", long_source, "--request-id", "cli-3", env=env)
    assert rejected.returncode == 2, rejected.stderr
    last = rejected.stdout.splitlines()[-1]
    assert " rejected (too_large: message is " in last and "65536-byte limit" in last
    assert run_name_for("document-ingestion", "cli-3") not in runs_by_name(runs_dir)


def test_bad_parameters_are_refused_before_publishing(nats_server: NatsServer) -> None:
    env = {"LLMW_NATS_URL": nats_server.url}
    result = llmw("trigger", "document-ingestion", "-p", "sauce=x", "--wait", env=env)
    assert result.returncode == 2
    assert "unknown parameter 'sauce'" in result.stderr


def test_no_stream_means_no_bridge(nats_server: NatsServer) -> None:
    env = {"LLMW_NATS_URL": nats_server.url}
    result = llmw("trigger", "document-ingestion", "-p", "source=examples/docs", env=env)
    assert result.returncode == 1
    assert "is the bridge running?" in result.stderr


def test_an_unreachable_server_is_named(tmp_path: Path) -> None:
    from testing.nats_server import free_port

    url = f"nats://127.0.0.1:{free_port()}"
    result = llmw("trigger", "document-ingestion", "-p", "source=x", env={"LLMW_NATS_URL": url})
    assert result.returncode == 1
    assert f"cannot reach NATS at {url}" in result.stderr
