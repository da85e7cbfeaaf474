"""`llmw trigger` says a request was published only once JetStream has acknowledged it."""

from __future__ import annotations

from testing.nats_server import NatsServer, free_port
from tests.llmw.test_ingest_cli import llmw


def test_nothing_is_said_published_when_nats_is_unreachable() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = llmw("trigger", "document-ingestion", "-p", "source=x", env={"LLMW_NATS_URL": url})
    assert result.returncode == 1, result.stderr
    assert "published" not in result.stdout


def test_nothing_is_said_published_when_no_stream_acknowledges_it(
    nats_server: NatsServer,
) -> None:
    env = {"LLMW_NATS_URL": nats_server.url}
    result = llmw("trigger", "document-ingestion", "-p", "source=x", env=env)
    assert result.returncode == 1, result.stderr
    assert "published" not in result.stdout
