"""JSON requests (what Argo Events' NATS trigger publishes) under the same contract as
MessagePack ones: same validation and limits, one run per request_id, rejections dead-lettered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.messages import RejectCode, Rejection, RunState, decode_request
from testing.bridge_harness import (
    collapsed,
    dead_letters,
    packb,
    publish,
    wait_consumer_settled,
    wait_for,
    wait_for_state,
)
from testing.nats_server import NatsServer
from testing.recording_engine import runs_by_name

SUBJECT = "ai.pipeline.trigger.document-ingestion"
LIMIT = 64 * 1024
GOOD = {"v": 1, "request_id": "j1", "pipeline": "document-ingestion", "parameters": {"source": "x"}}


def jsonb(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_a_json_request_decodes_as_its_messagepack_twin() -> None:
    from_json = decode_request(jsonb(GOOD), SUBJECT, LIMIT)
    assert from_json == decode_request(packb(GOOD), SUBJECT, LIMIT)
    assert decode_request(b"  \n" + jsonb(GOOD), SUBJECT, LIMIT) == from_json


@pytest.mark.parametrize(
    ("data", "code", "words"),
    [
        (b'{"request_id": "j2", ', RejectCode.undecodable, "not JSON"),
        (b'{"request_id": "\xff"}', RejectCode.undecodable, "not JSON"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, RejectCode.undecodable, "not JSON"),
        (jsonb({**GOOD, "image": "evil:latest"}), RejectCode.forbidden_field, "may not set image"),
        (
            jsonb({**GOOD, "parameters": {"source": "x", "env": {"A": 1}}}),
            RejectCode.forbidden_field,
            "parameters.env",
        ),
        (jsonb({**GOOD, "parameters": {"sauce": "x"}}), RejectCode.invalid_parameters, "sauce"),
        (
            jsonb({**GOOD, "parameters": {"source": "x" * LIMIT}}),
            RejectCode.too_large,
            "byte limit",
        ),
    ],
    ids=[
        "truncated",
        "bad utf-8",
        "nested too deep",
        "image",
        "env",
        "unknown parameter",
        "too large",
    ],
)
def test_bad_json_is_rejected_like_bad_messagepack(
    data: bytes, code: RejectCode, words: str
) -> None:
    with pytest.raises(Rejection) as caught:
        decode_request(data, SUBJECT, LIMIT)
    assert caught.value.code is code
    assert words in caught.value.reason


def test_a_json_request_published_twice_makes_one_run(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    start_bridge(run_s=0.1)
    body = jsonb({**GOOD, "request_id": "evt-1"})
    publish(nats_server.url, body)  # Argo Events redelivers an event: same request_id
    publish(nats_server.url, body)
    events = wait_for_state(nats_server.url, "evt-1", RunState.succeeded)
    # The copy re-publishes the status current when it arrived: a repeat, never a step back.
    assert collapsed(events) == ["accepted", "submitted", "running", "succeeded"]
    wait_consumer_settled(nats_server.url)
    assert sum(runs_by_name(runs_dir).values()) == 1


def test_a_bad_json_request_is_dead_lettered(nats_server: NatsServer, start_bridge: Any) -> None:
    start_bridge()
    publish(nats_server.url, jsonb({**GOOD, "request_id": "evt-bad", "command": ["sh"]}))
    events = wait_for_state(nats_server.url, "evt-bad", RunState.rejected)
    assert events[-1].error is not None and events[-1].error.code == "forbidden_field"
    wait_for(lambda: len(dead_letters(nats_server.url)) == 1, 30, "one dead letter")
