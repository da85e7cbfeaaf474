"""What every engine shares: the protocol, result rows, batching."""

from __future__ import annotations

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
