"""Batch inference engines: an OpenAI-compatible server, local transformers, and vLLM.

Each engine takes requests (OpenAI batch rows) and emits one result per row, as results arrive,
in any order; the caller matches them by ``custom_id``. A row that fails gets an error result;
it never stops the others.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol

from components.batch_io import result_id
from components.batch_models import BatchResult, BatchRow, ResponseBody, RowError

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


def _batched(rows: Iterable[BatchRow], size: int) -> Iterator[list[BatchRow]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


class OpenAIEngine:
    """An OpenAI-compatible server: bounded concurrency, retries with backoff on 429, 5xx and
    timeouts; other 4xx answers (a prompt too long, a bad body) are that row's error."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        asyncio.run(self._process(rows, emit))

    async def _process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
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

        last = ""
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.post(row.url, json=row.body)
            except httpx.TimeoutException as exc:
                last = f"timeout: {exc!r}"
            except httpx.TransportError as exc:
                last = f"connection error: {exc!r}"
            else:
                if response.status_code == 200:
                    return ok_result(row, response.json())
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    return error_result(row, "request_failed", last, response.status_code)
                retry_after = _retry_after(response.headers.get("retry-after"))
                if retry_after is not None and attempt < self.max_retries:
                    await asyncio.sleep(retry_after)
                    continue
            if attempt < self.max_retries:
                await asyncio.sleep(min(30.0, self.backoff_s * 2**attempt))
        return error_result(row, "retries_exhausted", f"after {self.max_retries + 1} tries: {last}")


def _retry_after(value: str | None) -> float | None:
    try:
        return min(60.0, float(value)) if value is not None else None
    except ValueError:
        return None


class TransformersEngine:
    """Local generation with transformers (left padding, greedy or sampled, batched), and
    ``/v1/embeddings`` rows through sentence-transformers."""

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None) -> None:
        from components.offline import configure_offline

        configure_offline()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = model
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model: Any = AutoModelForCausalLM.from_pretrained(model)
        self.model.to(self.device).eval()  # type: ignore[arg-type]
        config = self.model.config
        context = getattr(config, "max_position_embeddings", None) or getattr(
            config, "n_positions", None
        )
        self.max_length = int(context or 2048)
        self._embedders: dict[str, Any] = {}

    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        for batch in _batched(rows, self.batch_size):
            embeddings = [r for r in batch if r.url == "/v1/embeddings"]
            generations = [r for r in batch if r.url != "/v1/embeddings"]
            if embeddings:
                self._embed(embeddings, emit)
            # Rows with the same sampling settings are generated together.
            groups: dict[tuple[int, float], list[tuple[BatchRow, str]]] = {}
            for row in generations:
                prompt = self._prompt(row)
                if prompt is None:
                    emit(
                        error_result(row, "invalid_request", "body has no prompt or messages", 400)
                    )
                    continue
                key = (
                    int(row.body.get("max_tokens") or 16),
                    float(row.body.get("temperature") or 0),
                )
                groups.setdefault(key, []).append((row, prompt))
            for (max_tokens, temperature), items in groups.items():
                self._generate(items, max_tokens, temperature, emit)

    def _prompt(self, row: BatchRow) -> str | None:
        if row.url == "/v1/completions":
            prompt = row.body.get("prompt")
            return prompt if isinstance(prompt, str) else None
        messages = row.body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return "\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages) + "\nassistant:"

    def _generate(
        self, items: list[tuple[BatchRow, str]], max_tokens: int, temperature: float, emit: Emit
    ) -> None:
        import torch

        fitting: list[tuple[BatchRow, str, int]] = []
        for row, prompt in items:
            length = len(self.tokenizer(prompt)["input_ids"])
            if length + max_tokens > self.max_length:
                message = (
                    f"prompt of {length} tokens + max_tokens {max_tokens} exceeds the model's "
                    f"{self.max_length}-token context"
                )
                emit(error_result(row, "context_length_exceeded", message, 400))
            else:
                fitting.append((row, prompt, length))
        if not fitting:
            return
        encoded = self.tokenizer([p for _, p, _ in fitting], return_tensors="pt", padding=True)
        encoded = {k: v.to(self.device) for k, v in encoded.items()}
        sample = temperature > 0
        with torch.no_grad():
            output = self.model.generate(
                **encoded,
                max_new_tokens=max_tokens,
                do_sample=sample,
                temperature=temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = encoded["input_ids"].shape[1]
        for index, (row, _, prompt_tokens) in enumerate(fitting):
            new_tokens = output[index, width:]
            eos = self.tokenizer.eos_token_id
            finish = "stop" if eos is not None and bool((new_tokens == eos).any()) else "length"
            completion_ids = [
                int(t) for t in new_tokens if int(t) not in (eos, self.tokenizer.pad_token_id)
            ]
            text = str(self.tokenizer.decode(completion_ids, skip_special_tokens=True))
            emit(ok_result(row, self._body(row, text, finish, prompt_tokens, len(completion_ids))))

    def _body(
        self, row: BatchRow, text: str, finish: str, prompt_tokens: int, completion_tokens: int
    ) -> dict[str, Any]:
        chat = row.url == "/v1/chat/completions"
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": str(row.body.get("model") or self.model_name),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _embed(self, rows: list[BatchRow], emit: Emit) -> None:
        """The batch's embedding rows, one encode per model (the model loaded once)."""
        by_model: dict[str, list[tuple[BatchRow, list[str]]]] = {}
        for row in rows:
            inputs = row.body.get("input")
            texts = [inputs] if isinstance(inputs, str) else inputs
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                emit(error_result(row, "invalid_request", "input must be a string or strings", 400))
                continue
            model = str(row.body.get("model") or "all-MiniLM-L6-v2")
            by_model.setdefault(model, []).append((row, texts))
        for model, items in by_model.items():
            try:
                embedder = self._embedder(model)
            except Exception as exc:
                for row, _ in items:
                    emit(error_result(row, "model_not_found", f"{model}: {exc}", 404))
                continue
            vectors = embedder.embed([text for _, texts in items for text in texts])
            start = 0
            for row, texts in items:
                mine, start = vectors[start : start + len(texts)], start + len(texts)
                data = [
                    {"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(mine)
                ]
                tokens = sum(len(t.split()) for t in texts)
                body = {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
                emit(ok_result(row, body))

    def _embedder(self, model: str) -> Any:
        """The sentence-transformers model, loaded on first use and kept."""
        from components.embedders import SentenceTransformerEmbedder

        if model not in self._embedders:
            self._embedders[model] = SentenceTransformerEmbedder(model, device=self.device)
        return self._embedders[model]


class VLLMEngine:
    """Offline ``vllm.LLM``: generate, chat and embed, batched by vLLM's own scheduler.

    vLLM needs a GPU and is the ``gpu`` extra; where it is missing this raises a clear error.
    """

    def __init__(
        self,
        model: str,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        batch_size: int = 256,
    ) -> None:
        try:
            import vllm
        except ImportError as exc:
            raise RuntimeError(
                "the vllm engine needs vLLM and a GPU: install llm-workflows[gpu] on a GPU node "
                "(the placement puts it on khelben), or use --engine transformers or openai"
            ) from exc
        self.vllm = vllm
        self.model_name = model
        self.batch_size = batch_size
        self.llm = vllm.LLM(
            model=model,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=enable_prefix_caching,
        )
        self.max_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.tokenizer = self.llm.get_tokenizer()

    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        for batch in _batched(rows, self.batch_size):
            for url in ("/v1/chat/completions", "/v1/completions", "/v1/embeddings"):
                selected = [r for r in batch if r.url == url]
                if selected:
                    self._run(url, selected, emit)

    def _sampling(self, row: BatchRow) -> Any:
        body = row.body
        return self.vllm.SamplingParams(
            max_tokens=int(body.get("max_tokens") or 16),
            temperature=float(body.get("temperature") or 0.0),
            top_p=float(body.get("top_p") or 1.0),
            seed=body.get("seed"),
        )

    def _run(self, url: str, rows: list[BatchRow], emit: Emit) -> None:
        if url == "/v1/embeddings":
            texts = [r.body.get("input") or "" for r in rows]
            outputs = self.llm.embed([t if isinstance(t, str) else " ".join(t) for t in texts])
            for row, out in zip(rows, outputs, strict=True):
                vector = list(out.outputs.embedding)
                data = [{"object": "embedding", "index": 0, "embedding": vector}]
                emit(ok_result(row, {"object": "list", "data": data, "model": self.model_name}))
            return
        fitting = []
        for row in rows:
            prompt = row.body.get("prompt") if url == "/v1/completions" else None
            messages = row.body.get("messages") if url != "/v1/completions" else None
            text = (
                prompt
                if isinstance(prompt, str)
                else self.tokenizer.apply_chat_template(
                    messages, tokenize=False, add_generation_prompt=True
                )
                if isinstance(messages, list)
                else None
            )
            if text is None:
                emit(error_result(row, "invalid_request", "body has no prompt or messages", 400))
                continue
            length = len(self.tokenizer(text)["input_ids"])
            if length + int(row.body.get("max_tokens") or 16) > self.max_length:
                message = f"prompt of {length} tokens exceeds the {self.max_length}-token context"
                emit(error_result(row, "context_length_exceeded", message, 400))
                continue
            fitting.append((row, text))
        if not fitting:
            return
        outputs = self.llm.generate(
            [t for _, t in fitting], [self._sampling(r) for r, _ in fitting]
        )
        for (row, _), out in zip(fitting, outputs, strict=True):
            completion = out.outputs[0]
            chat = url == "/v1/chat/completions"
            choice: dict[str, Any] = {"index": 0, "finish_reason": completion.finish_reason}
            if chat:
                choice["message"] = {"role": "assistant", "content": completion.text}
            else:
                choice["text"] = completion.text
            prompt_tokens = len(out.prompt_token_ids or [])
            completion_tokens = len(completion.token_ids)
            emit(
                ok_result(
                    row,
                    {
                        "object": "chat.completion" if chat else "text_completion",
                        "model": self.model_name,
                        "choices": [choice],
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens,
                        },
                    },
                )
            )
