"""Every kind of bad message is rejected with its reason, dead-lettered and never redelivered;
the decoder never raises past the rejection path, whatever it is fed."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.messages import PipelineRequest, RejectCode, Rejection, RunState, decode_request
from testing.bridge_harness import (
    dead_letters,
    packb,
    publish,
    request,
    send,
    states,
    statuses,
    wait_consumer_settled,
    wait_for,
    wait_for_state,
)
from testing.nats_server import NatsServer
from testing.recording_engine import runs_by_name

SUBJECT = "ai.pipeline.trigger.document-ingestion"
LIMIT = 64 * 1024
GOOD = {"v": 1, "request_id": "r1", "pipeline": "document-ingestion", "parameters": {"source": "x"}}

BAD_MESSAGES: list[tuple[str, bytes, RejectCode, str]] = [
    ("garbage", b"\xc1\xff\x00not msgpack", RejectCode.undecodable, "not MessagePack"),
    ("a list", packb([1, 2, 3]), RejectCode.invalid_message, "expected a map, got list"),
    ("no id", packb({**GOOD, "request_id": None}), RejectCode.missing_request_id, "request_id"),
    ("int id", packb({**GOOD, "request_id": 7}), RejectCode.missing_request_id, "request_id"),
    (
        "unknown pipeline",
        packb({**GOOD, "request_id": "bad-pipe", "pipeline": "rm-rf"}),
        RejectCode.unknown_pipeline,
        "unknown pipeline 'rm-rf'",
    ),
    (
        "bad parameters",
        packb({**GOOD, "request_id": "bad-params", "parameters": {"source": "x", "top": 1}}),
        RejectCode.invalid_parameters,
        "unknown parameter 'top'",
    ),
    (
        "wrong type",
        packb({**GOOD, "request_id": "bad-type", "parameters": ["source"]}),
        RejectCode.invalid_message,
        "parameters",
    ),
    (
        "an image",
        packb({**GOOD, "request_id": "bad-image", "image": "evil:latest"}),
        RejectCode.forbidden_field,
        "may not set image",
    ),
    (
        "an env var in parameters",
        packb({**GOOD, "request_id": "bad-env", "parameters": {"source": "x", "env": {"A": 1}}}),
        RejectCode.forbidden_field,
        "parameters.env",
    ),
    (
        "a node selector",
        packb({**GOOD, "request_id": "bad-node", "nodeSelector": {"kubernetes.io/hostname": "x"}}),
        RejectCode.forbidden_field,
        "nodeSelector",
    ),
    (
        "a command",
        packb({**GOOD, "request_id": "bad-cmd", "command": ["sh", "-c", "id"]}),
        RejectCode.forbidden_field,
        "command",
    ),
    (
        "an unknown engine",
        packb({**GOOD, "request_id": "bad-engine", "engine": "docker"}),
        RejectCode.unknown_engine,
        "engine 'docker'",
    ),
    (
        "a future version",
        packb({**GOOD, "request_id": "bad-v", "v": 9}),
        RejectCode.unsupported_version,
        "version 9",
    ),
    (
        "too large",
        packb({**GOOD, "request_id": "big", "parameters": {"source": "x" * (LIMIT + 10)}}),
        RejectCode.too_large,
        "over the 65536-byte limit",
    ),
]


@pytest.mark.parametrize(
    ("data", "code", "words"), [case[1:] for case in BAD_MESSAGES], ids=[c[0] for c in BAD_MESSAGES]
)
def test_the_decoder_names_each_problem(data: bytes, code: RejectCode, words: str) -> None:
    with pytest.raises(Rejection) as caught:
        decode_request(data, SUBJECT, LIMIT)
    assert caught.value.code is code
    assert words in caught.value.reason


def test_the_subject_names_the_pipeline_when_the_body_does_not() -> None:
    body = {key: value for key, value in GOOD.items() if key != "pipeline"}
    assert decode_request(packb(body), SUBJECT, LIMIT).pipeline == "document-ingestion"
    other = packb({**GOOD, "pipeline": "batch-inference"})
    with pytest.raises(Rejection, match="subject names pipeline"):
        decode_request(other, SUBJECT, LIMIT)


def test_a_valid_request_round_trips() -> None:
    sent = PipelineRequest(
        request_id="ok-1",
        pipeline="document-ingestion",
        engine="kfp",
        parameters={"source": "s3://docs/handbook", "prune": True},
        experiment="nightly",
    )
    assert decode_request(sent.encode(), SUBJECT, LIMIT) == sent


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what MessagePack can carry
    | st.floats()
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise_past_the_rejection_path(data: bytes) -> None:
    with contextlib.suppress(Rejection):
        decode_request(data, SUBJECT, LIMIT)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["v", "request_id", "pipeline", "engine", "parameters", "experiment"])
        | st.text(max_size=12),
        json_values,
        max_size=8,
    )
)
def test_arbitrary_maps_never_raise_past_the_rejection_path(value: dict[str, Any]) -> None:
    try:
        request = decode_request(packb(value), SUBJECT, LIMIT)
    except Rejection as rejection:
        assert rejection.reason
    else:
        assert request.pipeline == "document-ingestion" and request.request_id


def test_bad_messages_are_rejected_dead_lettered_and_not_redelivered(
    nats_server: NatsServer, start_bridge: Any, runs_dir: Path
) -> None:
    bridge = start_bridge()
    for _, data, _, _ in BAD_MESSAGES[:-1]:  # the bridge's own limit is the settings' default
        publish(nats_server.url, data)
    send(nats_server.url, request("good-after-bad"))
    wait_for_state(nats_server.url, "good-after-bad", RunState.succeeded)
    wait_for(
        lambda: len(dead_letters(nats_server.url)) == len(BAD_MESSAGES) - 1,
        10,
        "dead letters",
    )
    letters = dead_letters(nats_server.url)
    codes = sorted(headers["Llmw-Reject-Code"] for _, headers in letters)
    assert codes == sorted(code.value for _, _, code, _ in BAD_MESSAGES[:-1])
    for (_, data, _, words), (letter, headers) in zip(BAD_MESSAGES[:-1], letters, strict=True):
        assert letter == data  # the original bytes, kept for inspection
        assert words in headers["Llmw-Reject-Reason"]
    rejected = statuses(nats_server.url, "bad-image")
    assert states(rejected) == ["rejected"]
    assert rejected[0].error is not None and rejected[0].error.code == "forbidden_field"
    assert "image" in rejected[0].error.message
    # Every message delivered and none left unacked: a terminated message is never delivered
    # again (JetStream redelivers only what waits for an ack), and none was meanwhile.
    info = wait_consumer_settled(nats_server.url)
    assert info.num_redelivered == 0
    assert bridge.metrics.sample("requests_received_total") == len(BAD_MESSAGES)
    assert bridge.metrics.sample("messages_redelivered_total") == 0
    assert sum(runs_by_name(runs_dir).values()) == 1


def test_an_oversize_request_is_rejected_under_the_id_in_its_header(
    nats_server: NatsServer, start_bridge: Any
) -> None:
    start_bridge()
    big = packb({**GOOD, "request_id": "big-1", "parameters": {"source": "x" * (LIMIT + 10)}})
    publish(nats_server.url, big, msg_id="big-1")
    events = wait_for_state(nats_server.url, "big-1", RunState.rejected)
    assert events[-1].error is not None and events[-1].error.code == "too_large"
