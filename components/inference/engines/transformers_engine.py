"""Batch rows through local transformers (generation) and sentence-transformers (embeddings)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

from components.inference.engines.base import Emit, batched, error_result, ok_result
from components.inference.models import BatchRow


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
        for batch in batched(rows, self.batch_size):
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
        from components.ingest.embedders import SentenceTransformerEmbedder

        if model not in self._embedders:
            self._embedders[model] = SentenceTransformerEmbedder(model, device=self.device)
        return self._embedders[model]
