"""Metrics names and the health server, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.health import HealthServer
from bridge.metrics import BridgeMetrics


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metric_names_labels_and_separate_registries() -> None:
    metrics = BridgeMetrics()
    metrics.received.inc(3)
    metrics.rejected.labels(reason="unknown_pipeline").inc()
    metrics.submitted.labels(engine="argo").inc(2)
    metrics.failed.labels(engine="kfp").inc()
    metrics.runs_succeeded.labels(engine="argo").inc()
    metrics.redelivered.inc()
    metrics.duplicates.inc()
    metrics.submit_latency.observe(0.004)
    metrics.in_flight.set(7)
    samples = _samples(metrics.render().decode())
    assert samples[("llmw_bridge_requests_received_total", ())] == 3
    assert samples[("llmw_bridge_requests_rejected_total", (("reason", "unknown_pipeline"),))] == 1
    assert samples[("llmw_bridge_runs_submitted_total", (("engine", "argo"),))] == 2
    assert samples[("llmw_bridge_runs_failed_total", (("engine", "kfp"),))] == 1
    assert samples[("llmw_bridge_runs_succeeded_total", (("engine", "argo"),))] == 1
    assert samples[("llmw_bridge_messages_redelivered_total", ())] == 1
    assert samples[("llmw_bridge_duplicate_requests_total", ())] == 1
    assert samples[("llmw_bridge_requests_in_flight", ())] == 7
    assert samples[("llmw_bridge_submit_latency_seconds_count", ())] == 1
    buckets = {
        dict(labels)["le"]
        for (name, labels) in samples
        if name == "llmw_bridge_submit_latency_seconds_bucket"
    }
    assert {"0.001", "0.005", "60.0", "+Inf"} <= buckets
    assert all(name.startswith("llmw_bridge_") for (name, _labels) in samples)
    # Each instance owns its registry: a second one neither collides nor shares counts.
    assert (
        _samples(BridgeMetrics().render().decode())[("llmw_bridge_requests_received_total", ())]
        == 0
    )


def test_health_ready_metrics_and_404_over_http(capfd: pytest.CaptureFixture[str]) -> None:
    metrics = BridgeMetrics()
    ready = threading.Event()
    with HealthServer("127.0.0.1", 0, ready.is_set, metrics) as server:
        assert server.port > 0
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=5) as client:
            health = client.get("/healthz")
            assert (health.status_code, health.text.strip()) == (200, "ok")

            not_ready = client.get("/readyz")
            assert not_ready.status_code == 503
            assert "not ready" in not_ready.text
            ready.set()
            assert client.get("/readyz").status_code == 200
            ready.clear()
            assert client.get("/readyz").status_code == 503

            metrics.received.inc()
            metrics.rejected.labels(reason="too_large").inc()
            scraped = client.get("/metrics")
            assert scraped.status_code == 200
            assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert "llmw_bridge_requests_received_total 1.0" in scraped.text
            assert 'llmw_bridge_requests_rejected_total{reason="too_large"} 1.0' in scraped.text

            assert client.get("/nope").status_code == 404
            assert client.get("/healthz?verbose=1").status_code == 200
    assert "GET /" not in capfd.readouterr().err  # no access log


def test_a_readiness_check_that_raises_is_503_not_a_dead_server() -> None:
    def broken() -> bool:
        raise RuntimeError("consumer lookup failed")

    with HealthServer("127.0.0.1", 0, broken, BridgeMetrics()) as server:
        response = httpx.get(f"http://127.0.0.1:{server.port}/readyz", timeout=5)
        assert response.status_code == 503
        assert "not ready" in response.text
        assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).status_code == 200


def test_stop_closes_the_port() -> None:
    server = HealthServer("127.0.0.1", 0, lambda: True, BridgeMetrics())
    server.start()
    port = server.port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    server.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    # The listening socket is closed: the port can be listened on again right away (REUSEADDR
    # only passes over the TIME_WAIT of the finished request, never over a live listener).
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
    server.stop()  # a second stop is a no-op
