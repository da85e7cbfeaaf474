"""What every engine shares: the protocol, result rows, batching."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

from components.inference.batch_io import result_id
from components.inference.models import BatchResult, BatchRow, ResponseBody, RowError

Emit = Callable[[BatchResult], None]


class InferenceEngine(Protocol):
    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None: ...


def ok_result(row: BatchRow, body: dict[str, Any], status: int = 200) -> BatchResult:
    return BatchResult(
        id=result_id(row.custom_id),
        custom_id=row.custom_id,
        response=ResponseBody(status_code=status, request_id=uuid.uuid4().hex, body=body),
    )


def error_result(row: BatchRow, code: str, message: str, status: int | None = None) -> BatchResult:
    response = None
    if status is not None:
        response = ResponseBody(status_code=status, body={"error": {"message": message}})
    return BatchResult(
        id=result_id(row.custom_id),
        custom_id=row.custom_id,
        response=response,
        error=RowError(code=code, message=message),
    )


def batched(rows: Iterable[BatchRow], size: int) -> Iterator[list[BatchRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


def completion_body(
    model: str, chat: bool, text: str, finish: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """An OpenAI (chat) completion response body, as the engines answer a generation row."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice["text"] = text
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
