"""What the bridge chaos bench publishes: valid requests, malformed messages of seven kinds, and
copies of some valid ones (new stream messages without the dedup header, or repeats inside the
duplicate window with it), in a seeded order."""

from __future__ import annotations

import random
from dataclasses import dataclass

PIPELINE = "document-ingestion"
MALFORMED_KINDS = (
    "undecodable",  # garbage bytes
    "not_a_map",  # MessagePack, but a list
    "missing_request_id",
    "unknown_pipeline",
    "invalid_parameters",
    "forbidden_field",  # asks for an image
    "too_large",  # over the 64 KiB limit
)


@dataclass
class Planned:
    kind: str  # "valid", "republished", "dedup_header", or a malformed kind
    subject: str
    data: bytes
    headers: dict[str, str] | None
    request_id: str | None
    seq: int = 0  # the stream sequence JetStream acked
    duplicate: bool = False  # JetStream dropped it as a duplicate (Nats-Msg-Id)
    retries: int = 0


def valid_request(request_id: str, index: int) -> tuple[str, bytes]:
    from bridge.messages import PipelineRequest, trigger_subject

    engine = ("argo", "kfp", None)[index % 3]  # None: the pipeline's default engine
    request = PipelineRequest(
        request_id=request_id,
        pipeline=PIPELINE,
        engine=engine,
        parameters={"source": f"s3://chaos/docs/{index:05d}", "collection": "chaos"},
    )
    return trigger_subject(PIPELINE), request.encode()


def malformed_message(kind: str, index: int) -> tuple[str, bytes, str | None]:
    """(subject, bytes, the request_id it carries, if any) of one malformed message."""
    from bridge.messages import pack as _pack
    from bridge.messages import trigger_subject

    request_id = f"bad-{index:05d}"
    good = {"v": 1, "request_id": request_id, "pipeline": PIPELINE}
    params = {"source": f"s3://chaos/bad/{index:05d}"}
    subject = trigger_subject(PIPELINE)
    if kind == "undecodable":
        return subject, b"\xc1" + f"not messagepack {index}".encode(), None
    if kind == "not_a_map":
        return subject, _pack([request_id, PIPELINE, params]), None
    if kind == "missing_request_id":
        return subject, _pack({"pipeline": PIPELINE, "parameters": params}), None
    if kind == "unknown_pipeline":
        body = {**good, "pipeline": "no-such-pipeline", "parameters": params}
        return trigger_subject("no-such-pipeline"), _pack(body), request_id
    if kind == "invalid_parameters":
        body = {**good, "parameters": {"collection": "not a valid name!"}}  # and no source
        return subject, _pack(body), request_id
    if kind == "forbidden_field":
        body = {**good, "parameters": {**params, "image": "evil/miner:latest"}}
        return subject, _pack(body), request_id
    if kind == "too_large":
        body = {**good, "parameters": {"source": "s3://chaos/" + "x" * 70_000}}
        return subject, _pack(body), request_id
    raise ValueError(kind)


def plan(requests: int, malformed_share: float, seed: int) -> list[Planned]:
    """The messages in publishing order: originals shuffled, duplicates after their original."""
    rng = random.Random(seed)
    malformed = round(requests * malformed_share)
    originals: list[Planned] = []
    for i in range(requests - malformed):
        rid = f"chaos-{i:05d}"
        subject, data = valid_request(rid, i)
        originals.append(Planned("valid", subject, data, {"Nats-Msg-Id": rid}, rid))
    for i in range(malformed):
        kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
        subject, data, bad_id = malformed_message(kind, i)
        # As a client sends it: Nats-Msg-Id = request_id; one for those without an id too, so
        # that a publish retried after a lost ack is not stored twice.
        headers = {"Nats-Msg-Id": bad_id or f"bad-msg-{i:05d}"}
        originals.append(Planned(kind, subject, data, headers, bad_id))
    rng.shuffle(originals)
    keyed = [(float(position), item) for position, item in enumerate(originals)]
    valid = [(p, item) for p, item in keyed if item.kind == "valid"]
    chosen = rng.sample(valid, round(len(valid) * 0.15))
    split = round(len(valid) * 0.10)
    for n, (position, item) in enumerate(chosen):
        assert item.request_id is not None
        if n < split:  # a new stream message: soon after (often in flight) or well after
            offset = rng.randint(1, 10) if n % 2 else rng.randint(50, 400)
            copy = Planned("republished", item.subject, item.data, None, item.request_id)
        else:  # the same Nats-Msg-Id inside the 2-minute window: JetStream drops it
            offset = rng.randint(1, 200)
            copy = Planned("dedup_header", item.subject, item.data, item.headers, item.request_id)
        keyed.append((position + offset + rng.random() * 0.5 + 0.25, copy))
    keyed.sort(key=lambda pair: pair[0])
    return [item for _, item in keyed]
