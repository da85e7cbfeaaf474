"""The bridge process as it is operated: readiness follows NATS, metrics count, logs are JSON
lines carrying the request id, SIGTERM exits cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bridge.messages import RunState
from testing.bridge_harness import (
    BridgeProcess,
    packb,
    publish,
    request,
    send,
    wait_for,
    wait_for_state,
)
from testing.nats_server import NatsServer, free_port


def test_readiness_metrics_and_json_logs(
    nats_server: NatsServer, runs_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    log = tmp_path / "bridge.log"
    process = BridgeProcess(
        nats_server.url, runs_dir, "--http-port", str(port), "--log-level", "INFO", log=log
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> int:
        try:
            return httpx.get(f"{base}/readyz", timeout=1).status_code
        except httpx.TransportError:
            return 0

    process.start()
    try:
        wait_for(lambda: ready() == 200, 30, "/readyz 200")
        assert httpx.get(f"{base}/healthz").status_code == 200
        send(nats_server.url, request("ops-1"))
        publish(nats_server.url, packb({"request_id": "ops-2", "image": "evil"}))
        wait_for_state(nats_server.url, "ops-1", RunState.succeeded)
        wait_for_state(nats_server.url, "ops-2", RunState.rejected)
        metrics = httpx.get(f"{base}/metrics").text
        assert "llmw_bridge_requests_received_total 2.0" in metrics
        assert 'llmw_bridge_requests_rejected_total{reason="forbidden_field"} 1.0' in metrics
        assert 'llmw_bridge_runs_submitted_total{engine="argo"} 1.0' in metrics

        nats_server.kill()
        wait_for(lambda: ready() == 503, 30, "/readyz 503 without NATS")
        assert httpx.get(f"{base}/healthz").status_code == 200  # alive, only not ready
        nats_server.start()
        wait_for(lambda: ready() == 200, 60, "/readyz 200 after NATS is back")
        assert process.terminate() == 0
    finally:
        process.kill()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    submitted = [r for r in records if r["message"] == "submitted"]
    assert submitted and submitted[0]["request_id"] == "ops-1" and submitted[0]["run_id"]
    rejected = [r for r in records if r["message"].startswith("rejected")]
    assert rejected and rejected[0]["request_id"] == "ops-2"
    assert rejected[0]["code"] == "forbidden_field"
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
