"""Rejected messages: a ``rejected`` status for their requester, the original bytes on a dead-letter
subject for people, and a ``term`` so JetStream never delivers them again."""

from __future__ import annotations

import logging
import re

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from bridge.claims import ClaimStore
from bridge.messages import (
    REQUEST_ID_PATTERN,
    PipelineStatus,
    Rejection,
    RunState,
    StatusError,
    dead_letter_subject,
    status_subject,
)
from bridge.metrics import BridgeMetrics

log = logging.getLogger("llmw.bridge")

REASON_HEADER_CHARS = 1000


def header_request_id(msg: Msg) -> str | None:
    """The ``Nats-Msg-Id`` header, when it is a valid request id."""
    value = (msg.headers or {}).get("Nats-Msg-Id")
    return value if value and re.fullmatch(REQUEST_ID_PATTERN, value) else None


def dead_letter_headers(msg: Msg, rejection: Rejection, stream: str) -> dict[str, str]:
    """Why, where from, and a ``Nats-Msg-Id`` that keeps a redelivery's dead letter single."""
    seq = msg.metadata.sequence.stream
    return {
        "Llmw-Reject-Code": rejection.code.value,
        "Llmw-Reject-Reason": " ".join(rejection.reason.split())[:REASON_HEADER_CHARS],
        "Llmw-Original-Subject": msg.subject,
        "Llmw-Stream-Seq": str(seq),
        "Nats-Msg-Id": f"dead-letter-{stream}-{seq}",
    }


class DeadLetters:
    """Takes a rejected message to its end: status (when its id is known), dead letter, term."""

    def __init__(
        self, js: JetStreamContext, claims: ClaimStore, stream: str, metrics: BridgeMetrics
    ) -> None:
        self.js = js
        self.claims = claims
        self.stream = stream
        self.metrics = metrics

    async def reject(self, msg: Msg, rejection: Rejection) -> None:
        """Status ``rejected`` (when the id is known and unclaimed), dead letter, terminate."""
        self.metrics.rejected.labels(reason=rejection.code.value).inc()
        headers = dead_letter_headers(msg, rejection, self.stream)
        await self.js.publish(dead_letter_subject(rejection.code), msg.data, headers=headers)
        # Too large or undecodable, a request's id is still in its header (the contract sends
        # it as Nats-Msg-Id), so its requester learns why instead of waiting.
        request_id = rejection.request_id or header_request_id(msg)
        if request_id and await self.claims.get(request_id) is None:
            status = PipelineStatus(
                request_id=request_id,
                pipeline=rejection.pipeline,
                state=RunState.rejected,
                error=StatusError(code=rejection.code.value, message=rejection.reason),
            )
            await self.js.publish(status_subject(request_id), status.encode())
        await msg.term()
        log.warning(
            "rejected: %s",
            rejection.reason,
            extra={"request_id": request_id, "code": rejection.code.value},
        )
