"""Batch rows through an OpenAI-compatible server (the cluster's vLLM or any other)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from components.inference.batch_io import EngineUnavailableError, InputRefusedError
from components.inference.engines.base import Emit, error_result, ok_result
from components.inference.models import BatchResult, BatchRow


class OpenAIEngine:
    """An OpenAI-compatible server: bounded concurrency, retries with backoff on 429, 5xx and
    timeouts; other 4xx answers are that row's error (``context_length_exceeded`` and
    ``invalid_request`` for a request the server can't take, ``request_failed`` otherwise).
    Every request asks for ``model`` when it is given. A server that can't be reached at all
    is EngineUnavailableError when the engine is made, before any row."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        model: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.model = model
        self._check_reachable()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _check_reachable(self, tries: int = 3) -> None:
        """Any HTTP answer will do (even an error): only a connection that fails every try
        means nobody listens there."""
        import httpx

        url = f"{self.base_url}/v1/models"
        reason = ""
        for attempt in range(tries):
            try:
                httpx.get(url, headers=self._headers(), timeout=min(self.timeout_s, 10.0))
                return
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise InputRefusedError(f"server URL {self.base_url!r}: {exc}") from None
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                reason = " ".join(str(exc).split()) or type(exc).__name__
            except httpx.HTTPError:
                return  # it answered, if badly: the rows' own retries take it from here
            if attempt < tries - 1:
                time.sleep(0.25 * 2**attempt)
        raise EngineUnavailableError(f"cannot reach {self.base_url}/v1: {reason}")

    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        asyncio.run(self._process(rows, emit))

    async def _process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        import httpx

        headers = self._headers()
        limits = httpx.Limits(max_connections=self.concurrency)
        queue: asyncio.Queue[BatchRow | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=self.timeout_s, limits=limits
        ) as client:

            async def worker() -> None:
                while (row := await queue.get()) is not None:
                    emit(await self._one(client, row))

            workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
            for row in rows:
                await queue.put(row)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)

    async def _one(self, client: Any, row: BatchRow) -> BatchResult:
        import httpx

        body = row.body if self.model is None else {**row.body, "model": self.model}
        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.post(row.url, json=body)
            except httpx.TimeoutException as exc:
                last = f"timeout: {exc!r}"
            except httpx.TransportError as exc:
                last = f"connection error: {exc!r}"
            else:
                if response.status_code == 200:
                    return ok_result(row, response.json())
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    code = _refusal_code(response.status_code, response.text)
                    return error_result(row, code, last, response.status_code)
                retry_after = _retry_after(response.headers.get("retry-after"))
                if retry_after is not None and attempt < self.max_retries:
                    await asyncio.sleep(retry_after)
                    continue
            if attempt < self.max_retries:
                await asyncio.sleep(min(30.0, self.backoff_s * 2**attempt))
        return error_result(row, "retries_exhausted", f"after {self.max_retries + 1} tries: {last}")


def _refusal_code(status: int, text: str) -> str:
    """The error code of a 4xx answer: the request itself can't be served (not retried by a
    rerun), or it failed in a way a rerun may fix (a key, a model name, a server's state)."""
    lowered = text.lower()
    if "context_length_exceeded" in lowered or "maximum context length" in lowered:
        return "context_length_exceeded"
    if status in (400, 413, 422):
        return "invalid_request"
    return "request_failed"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None
