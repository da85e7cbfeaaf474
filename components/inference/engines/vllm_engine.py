"""Batch rows through offline vLLM (GPU only; the ``gpu`` extra)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from components.inference.engines.base import (
    Emit,
    batched,
    completion_body,
    error_result,
    ok_result,
)
from components.inference.models import BatchRow


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
        for batch in batched(rows, self.batch_size):
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
            self._embed(rows, emit)
            return
        texts = [(row, self._fitting_text(url, row, emit)) for row in rows]
        fitting = [(row, text) for row, text in texts if text is not None]
        if not fitting:
            return
        outputs = self.llm.generate(
            [t for _, t in fitting], [self._sampling(r) for r, _ in fitting]
        )
        for (row, _), out in zip(fitting, outputs, strict=True):
            completion = out.outputs[0]
            body = completion_body(
                self.model_name,
                url == "/v1/chat/completions",
                completion.text,
                completion.finish_reason,
                len(out.prompt_token_ids or []),
                len(completion.token_ids),
            )
            emit(ok_result(row, body))

    def _embed(self, rows: list[BatchRow], emit: Emit) -> None:
        texts = [r.body.get("input") or "" for r in rows]
        outputs = self.llm.embed([t if isinstance(t, str) else " ".join(t) for t in texts])
        for row, out in zip(rows, outputs, strict=True):
            vector = list(out.outputs.embedding)
            data = [{"object": "embedding", "index": 0, "embedding": vector}]
            emit(ok_result(row, {"object": "list", "data": data, "model": self.model_name}))

    def _fitting_text(self, url: str, row: BatchRow, emit: Emit) -> str | None:
        """The row's prompt text, or None after emitting why it can't run (none, too long)."""
        prompt = row.body.get("prompt") if url == "/v1/completions" else None
        messages = row.body.get("messages") if url != "/v1/completions" else None
        text: str | None = None
        if isinstance(prompt, str):
            text = prompt
        elif isinstance(messages, list):
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        if text is None:
            emit(error_result(row, "invalid_request", "body has no prompt or messages", 400))
            return None
        length = len(self.tokenizer(text)["input_ids"])
        if length + int(row.body.get("max_tokens") or 16) > self.max_length:
            message = f"prompt of {length} tokens exceeds the {self.max_length}-token context"
            emit(error_result(row, "context_length_exceeded", message, 400))
            return None
        return text
