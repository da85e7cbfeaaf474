"""The AI_PIPELINE message contract: requests in, status events out, MessagePack on the wire
(requests may also be JSON, as Argo Events publishes them).

A request may choose a registered pipeline, an engine and that pipeline's declared parameters,
nothing else. Anything the bridge cannot accept is a ``Rejection`` with a code and a reason, never
an exception that escapes the decoder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.registry import FORBIDDEN_KEYS, ParameterError, UnknownPipelineError, get_job

PROTOCOL_VERSION: Literal[1] = 1
TRIGGER_PREFIX = "ai.pipeline.trigger."
STATUS_PREFIX = "ai.pipeline.status."
DEAD_LETTER_PREFIX = "ai.pipeline.deadletter."
ENGINES = ("kfp-local", "argo-local", "kfp", "argo")
REQUEST_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"  # a KV key and one subject token
_SUBJECT_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class RunState(StrEnum):
    accepted = "accepted"
    submitted = "submitted"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    rejected = "rejected"

    @property
    def final(self) -> bool:
        return self in (RunState.succeeded, RunState.failed, RunState.rejected)


class RejectCode(StrEnum):
    too_large = "too_large"
    undecodable = "undecodable"
    invalid_message = "invalid_message"
    unsupported_version = "unsupported_version"
    missing_request_id = "missing_request_id"
    unknown_pipeline = "unknown_pipeline"
    unknown_engine = "unknown_engine"
    forbidden_field = "forbidden_field"
    invalid_parameters = "invalid_parameters"


class PipelineRequest(BaseModel):
    """``ai.pipeline.trigger.<pipeline>``: ask for one run; ``request_id`` makes it idempotent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION
    request_id: str = Field(pattern=REQUEST_ID_PATTERN)
    pipeline: str = Field(min_length=1, max_length=128)
    engine: Literal["kfp-local", "argo-local", "kfp", "argo"] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    experiment: str | None = Field(None, max_length=256)

    def encode(self) -> bytes:
        return pack(self.model_dump(mode="json", exclude_none=True))


class StatusError(BaseModel):
    code: str
    message: str


class PipelineStatus(BaseModel):
    """``ai.pipeline.status.<request_id>``: one step of a request's life, in order."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1] = PROTOCOL_VERSION
    request_id: str
    pipeline: str | None = None
    engine: str | None = None
    state: RunState
    run_id: str | None = None
    run_url: str | None = None
    error: StatusError | None = None
    at: str = Field(default_factory=lambda: utc_now())

    def encode(self) -> bytes:
        return pack(self.model_dump(mode="json"))

    @classmethod
    def decode(cls, data: bytes) -> PipelineStatus:
        return cls.model_validate(unpack(data))


class Rejection(Exception):
    """A message the bridge refuses: a code for metrics and the dead letter, a reason for people."""

    def __init__(
        self,
        code: RejectCode,
        reason: str,
        request_id: str | None = None,
        pipeline: str | None = None,
    ) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.request_id = request_id
        self.pipeline = pipeline


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def pack(value: Any) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=True)


def status_subject(request_id: str) -> str:
    return STATUS_PREFIX + request_id


def trigger_subject(pipeline: str) -> str:
    return TRIGGER_PREFIX + pipeline


def dead_letter_subject(code: RejectCode) -> str:
    return DEAD_LETTER_PREFIX + code.value


def decode_request(data: bytes, subject: str, max_bytes: int) -> PipelineRequest:
    """The request in ``data``, validated down to the pipeline's parameters; else ``Rejection``."""
    raw = _unpack_map(data, max_bytes)
    request_id = raw.get("request_id")
    known_id = request_id if isinstance(request_id, str) and request_id else None
    pipeline = raw.get("pipeline")
    known_pipeline = pipeline if isinstance(pipeline, str) else None

    def reject(code: RejectCode, reason: str) -> Rejection:
        return Rejection(code, reason, request_id=known_id, pipeline=known_pipeline)

    _check_envelope(raw, known_id, reject)
    subject_pipeline = subject.removeprefix(TRIGGER_PREFIX) if subject else ""
    if known_pipeline is None and _SUBJECT_TOKEN.match(subject_pipeline):
        raw = {**raw, "pipeline": subject_pipeline}
        known_pipeline = subject_pipeline
    engine = raw.get("engine")
    if engine is not None and engine not in ENGINES:
        raise reject(
            RejectCode.unknown_engine, f"engine {engine!r} is not one of {', '.join(ENGINES)}"
        )
    try:
        request = PipelineRequest.model_validate(raw)
    except ValidationError as exc:
        raise reject(RejectCode.invalid_message, _validation_summary(exc)) from None
    _check_job(request, subject_pipeline, reject)
    return request


def _unpack_map(data: bytes, max_bytes: int) -> dict[Any, Any]:
    """``data`` unpacked, when it is within the limit, MessagePack or JSON, and a map.

    Argo Events' NATS trigger publishes JSON. The two cannot be confused: a JSON object starts
    with ``{``, which in MessagePack is the integer 123, never a map.
    """
    if len(data) > max_bytes:
        raise Rejection(
            RejectCode.too_large, f"message is {len(data)} bytes, over the {max_bytes}-byte limit"
        )
    if data.lstrip()[:1] == b"{":
        try:
            raw = json.loads(data)
        except (ValueError, RecursionError) as exc:  # bad UTF-8; nesting deeper than Python's
            raise Rejection(RejectCode.undecodable, f"not JSON: {exc}") from None
    else:
        try:
            raw = unpack(data)
        except Exception as exc:  # msgpack raises several unrelated types on garbage
            raise Rejection(RejectCode.undecodable, f"not MessagePack: {exc}") from None
    if not isinstance(raw, dict):
        raise Rejection(RejectCode.invalid_message, f"expected a map, got {type(raw).__name__}")
    return raw


def _check_envelope(
    raw: dict[Any, Any], known_id: str | None, reject: Callable[[RejectCode, str], Rejection]
) -> None:
    """No forbidden key anywhere, a version this bridge speaks, a request id."""
    forbidden = _forbidden_paths(raw)
    if forbidden:
        raise reject(
            RejectCode.forbidden_field,
            f"a request may not set {', '.join(forbidden)}: only the pipeline's parameters",
        )
    if "v" in raw and raw["v"] != PROTOCOL_VERSION:
        raise reject(
            RejectCode.unsupported_version,
            f"version {raw['v']!r} is not supported (this bridge speaks v{PROTOCOL_VERSION})",
        )
    if known_id is None:
        raise reject(RejectCode.missing_request_id, "the request has no request_id string")


def _check_job(
    request: PipelineRequest,
    subject_pipeline: str,
    reject: Callable[[RejectCode, str], Rejection],
) -> None:
    """A registered pipeline, the one the subject names, with parameters its model accepts."""
    try:
        job = get_job(request.pipeline)
    except UnknownPipelineError as exc:
        raise reject(RejectCode.unknown_pipeline, str(exc)) from None
    if subject_pipeline and subject_pipeline != request.pipeline:
        raise reject(
            RejectCode.invalid_message,
            f"subject names pipeline {subject_pipeline!r} but the body names {request.pipeline!r}",
        )
    try:
        job.validate(request.parameters)
    except ParameterError as exc:
        raise reject(RejectCode.invalid_parameters, str(exc)) from None


def _forbidden_paths(value: Any, path: str = "", depth: int = 0) -> list[str]:
    """Dotted paths of forbidden keys anywhere in the message (bounded depth)."""
    found: list[str] = []
    if depth > 8:
        return found
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key)
            here = f"{path}.{name}" if path else name
            if name.lower().replace("-", "_").replace("_", "") in _FORBIDDEN_SQUASHED:
                found.append(here)
            found.extend(_forbidden_paths(item, here, depth + 1))
    elif isinstance(value, list):
        for index, item in enumerate(value[:1000]):
            found.extend(_forbidden_paths(item, f"{path}[{index}]", depth + 1))
    return found


_FORBIDDEN_SQUASHED = frozenset(key.replace("_", "") for key in FORBIDDEN_KEYS)


def _validation_summary(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:10]:
        field = ".".join(str(p) for p in error["loc"]) or "(message)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field {field!r}")
        else:
            problems.append(f"{field}: {error['msg']}")
    return "; ".join(problems)
