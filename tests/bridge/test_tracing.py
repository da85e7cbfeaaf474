"""One request, one trace: ``llmw trigger``'s publish, the bridge's accept and submit, each step of
the run (in its own process, exported over OTLP/HTTP), and each status the bridge publishes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from bridge.client import trigger
from bridge.engines import LocalEngine
from bridge.messages import PipelineStatus, RunState
from testing.bridge_harness import (
    bridge_settings,
    request,
    send,
    statuses,
    wait_for,
    wait_for_state,
)
from testing.documents import topic, write_document
from testing.nats_server import NatsServer
from testing.spans import OtlpReceiver, in_memory_spans

PUBLISH = "publish ai.pipeline.trigger.document-ingestion"


def _trace(request_id: str) -> list[ReadableSpan]:
    """This process's spans of the trace that publishing ``request_id`` started, oldest first."""
    spans = in_memory_spans().get_finished_spans()
    roots = [
        s
        for s in spans
        if s.name.startswith("publish ")
        and s.attributes is not None
        and s.attributes.get("llmw.request_id") == request_id
    ]
    assert len(roots) == 1, [s.name for s in spans]
    trace_id = roots[0].context.trace_id
    found = [s for s in spans if s.context.trace_id == trace_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def wait_for_final(url: str, request_id: str, timeout_s: float) -> list[PipelineStatus]:
    """The request's events once one of them is final."""
    found: list[PipelineStatus] = []

    def ended() -> bool:
        nonlocal found
        found = statuses(url, request_id)
        return any(s.state.final for s in found)

    wait_for(ended, timeout_s, f"{request_id} to end")
    return found


def _publish(url: str, request_id: str, **parameters: Any) -> None:
    asyncio.run(trigger(bridge_settings(url), request(request_id, **parameters)))


def test_a_request_is_one_trace_from_publish_to_its_last_status(
    nats_server: NatsServer, start_bridge: Any
) -> None:
    in_memory_spans()
    start_bridge(run_s=0.2)
    _publish(nats_server.url, "traced-1")
    wait_for_state(nats_server.url, "traced-1", RunState.succeeded)
    wait_for(lambda: len(_trace("traced-1")) >= 5, 10, "the status spans")
    spans = _trace("traced-1")
    assert [s.name for s in spans] == [
        PUBLISH,
        "bridge accept",
        "bridge submit",
        "bridge status running",
        "bridge status succeeded",
    ]
    root = spans[0]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in spans[1:])


def test_a_request_without_a_trace_gets_its_own(nats_server: NatsServer, start_bridge: Any) -> None:
    memory = in_memory_spans()
    start_bridge(run_s=0.1)
    send(nats_server.url, request("untraced-1"))  # no traceparent header
    wait_for_state(nats_server.url, "untraced-1", RunState.succeeded)

    def accepted() -> list[ReadableSpan]:
        return [
            s
            for s in memory.get_finished_spans()
            if s.name == "bridge accept"
            and s.attributes is not None
            and s.attributes.get("llmw.request_id") == "untraced-1"
        ]

    wait_for(lambda: len(accepted()) == 1, 10, "the accept span")
    assert accepted()[0].parent is None  # a root: no trace was carried


@pytest.mark.slow
def test_the_steps_of_a_local_run_join_the_request_trace(
    nats_server: NatsServer,
    start_bridge: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    in_memory_spans()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    source = tmp_path / "docs"
    for name in ("nats", "milvus", "argo"):
        write_document(source / f"{name}.md", name, topic(name))
    with OtlpReceiver() as receiver:
        # Set before the engine spawns its worker, whose steps read it.
        monkeypatch.setenv("LLMW_OTLP_ENDPOINT", receiver.endpoint)
        start_bridge(engines=[LocalEngine("argo-local", workers=1)])
        milvus = str(tmp_path / "traced.db")
        _publish(
            nats_server.url,
            "traced-run",
            engine="argo-local",
            source=str(source),
            milvus_uri=milvus,
        )
        events = wait_for_final(nats_server.url, "traced-run", timeout_s=600)
        assert events[-1].state is RunState.succeeded, events[-1]
        wait_for(lambda: len(_trace("traced-run")) >= 5, 10, "the status spans")
        spans = _trace("traced-run")
        submit = next(s for s in spans if s.name == "bridge submit")
        trace_id = format(submit.context.trace_id, "032x")
        steps = [s for s in receiver.spans() if s.trace_id == trace_id]
    names = [s.name for s in steps]
    assert names[0] == "ingest plan" and names[-1] == "ingest finish", names
    assert "ingest shard" in names
    assert {s.service for s in steps} == {"llmw-step"}
    assert {s.parent_id for s in steps} == {format(submit.context.span_id, "016x")}
    succeeded = next(s for s in spans if s.name == "bridge status succeeded")
    assert submit.start_time is not None and succeeded.start_time is not None
    assert submit.start_time < steps[0].start_ns and steps[-1].end_ns <= succeeded.start_time
