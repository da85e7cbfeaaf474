"""Request claims in a NATS KV bucket: the one record of each request's run and state.

``create`` succeeds only for a key that does not exist, so exactly one delivery of a request
claims it; every later update is a compare-and-set on the revision it read.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue
from pydantic import BaseModel, Field

from bridge.messages import PipelineRequest, PipelineStatus, RunState, StatusError, utc_now

CLAIM_TTL = timedelta(
    days=7
)  # well beyond the stream's 24 h, so a replayed request stays a duplicate


class ClaimRecord(BaseModel):
    """What the bridge knows of one request; the status events are views of it."""

    request_id: str
    pipeline: str
    engine: str
    state: RunState = RunState.accepted
    run_id: str | None = None
    run_url: str | None = None
    error: StatusError | None = None
    stream_seq: int | None = None  # the stream message that claimed it
    attempts: int = 0
    resumes: int = 0  # times a local run interrupted by a crash was started again
    parameters: dict[str, Any] = Field(default_factory=dict)
    experiment: str | None = None
    # The W3C trace context its publisher sent: the bridge's spans and the run's steps join it.
    traceparent: str | None = None
    created_at: str = Field(default_factory=utc_now)
    updated_at: str = Field(default_factory=utc_now)

    @classmethod
    def for_request(cls, request: PipelineRequest, engine: str, stream_seq: int) -> ClaimRecord:
        return cls(
            request_id=request.request_id,
            pipeline=request.pipeline,
            engine=engine,
            stream_seq=stream_seq,
            parameters=request.parameters,
            experiment=request.experiment,
        )

    def status(self) -> PipelineStatus:
        return PipelineStatus(
            request_id=self.request_id,
            pipeline=self.pipeline,
            engine=self.engine,
            state=self.state,
            run_id=self.run_id,
            run_url=self.run_url,
            error=self.error,
        )

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, data: bytes) -> ClaimRecord:
        return cls.model_validate(json.loads(data))


class ClaimStore:
    """The KV bucket of claims."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str) -> ClaimStore:
        """Bind the bucket, creating it (file storage, one revision kept) when missing."""
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    ttl=CLAIM_TTL.total_seconds(),
                    storage=StorageType.FILE,
                    description="llm-workflows bridge: one record per request_id",
                )
            )
        return cls(kv)

    async def claim(self, record: ClaimRecord) -> tuple[bool, ClaimRecord, int]:
        """``(True, record, revision)`` when this call created the claim; else the stored one."""
        try:
            revision = await self.kv.create(record.request_id, record.encode())
            return True, record, revision
        except KeyWrongLastSequenceError:
            pass
        found = await self.get(record.request_id)
        if found is None:  # deleted between the two calls: claim again
            return await self.claim(record)
        return False, *found

    async def get(self, request_id: str) -> tuple[ClaimRecord, int] | None:
        try:
            entry = await self.kv.get(request_id)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return ClaimRecord.decode(entry.value), entry.revision

    async def save(self, record: ClaimRecord, revision: int) -> int:
        """Write ``record`` if nobody changed it since ``revision``; the new revision.

        Raises KeyWrongLastSequenceError when it was changed meanwhile.
        """
        record.updated_at = utc_now()
        return await self.kv.update(record.request_id, record.encode(), last=revision)

    async def unfinished(self) -> list[tuple[ClaimRecord, int]]:
        """Every claim whose run was submitted and has not ended (the watcher's work)."""
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        found = []
        for key in keys:
            item = await self.get(key)
            if item is not None and item[0].state in (RunState.submitted, RunState.running):
                found.append(item)
        return found
