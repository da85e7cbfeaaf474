"""Batch rows through local transformers (generation) and sentence-transformers (embeddings)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from components.inference.batch_io import ModelNotFoundError
from components.inference.engines.base import (
    Emit,
    batched,
    completion_body,
    error_result,
    ok_result,
)
from components.inference.models import BatchRow


class TransformersEngine:
    """Local generation with transformers (left padding, greedy or sampled, batched), and
    ``/v1/embeddings`` rows through sentence-transformers: every row runs ``model`` (a request's
    ``body.model`` is not consulted), and its answer names it.

    The model is found when the engine is made (ModelNotFoundError otherwise); the causal LM and
    the embedder load at their first row, so a run of embeddings needs no causal LM.
    """

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None) -> None:
        from components.offline import configure_offline

        configure_offline()
        import torch

        self.model_name = model
        self.path = _found_model(model)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lm: tuple[Any, Any, int] | None = None
        self._embedder_model: Any = None
        self._unsupported: dict[str, str] = {}  # what failed to load, and why

    def _generator(self) -> tuple[Any, Any, int]:
        """(tokenizer, causal LM, context length), loaded on first use."""
        if self._lm is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.path, padding_side="left")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model: Any = AutoModelForCausalLM.from_pretrained(self.path)
            model.to(self.device).eval()
            config = model.config
            context = getattr(config, "max_position_embeddings", None) or getattr(
                config, "n_positions", None
            )
            self._lm = (tokenizer, model, int(context or 2048))
        return self._lm

    @property
    def tokenizer(self) -> Any:
        return self._generator()[0]

    @property
    def model(self) -> Any:
        return self._generator()[1]

    @property
    def max_length(self) -> int:
        return self._generator()[2]

    def _loads(self, kind: str, rows: list[BatchRow], emit: Emit) -> bool:
        """Whether the model loads for ``kind`` (generate, embed); if not, each row says why."""
        if kind not in self._unsupported:
            try:
                if kind == "generate":
                    self._generator()
                else:
                    self._embedder()
                return True
            except Exception as exc:  # any loader failure is this model's answer for the kind
                reason = " ".join(str(exc).split())[:300]
                self._unsupported[kind] = f"model {self.model_name} cannot {kind}: {reason}"
        for row in rows:
            emit(error_result(row, "model_not_supported", self._unsupported[kind], 400))
        return False

    def process(self, rows: Iterable[BatchRow], emit: Emit) -> None:
        for batch in batched(rows, self.batch_size):
            embeddings = [r for r in batch if r.url == "/v1/embeddings"]
            generations = [r for r in batch if r.url != "/v1/embeddings"]
            if embeddings and self._loads("embed", embeddings, emit):
                self._embed(embeddings, emit)
            if generations and not self._loads("generate", generations, emit):
                continue
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
            chat = row.url == "/v1/chat/completions"
            body = completion_body(
                self.model_name, chat, text, finish, prompt_tokens, len(completion_ids)
            )
            emit(ok_result(row, body))

    def _embed(self, rows: list[BatchRow], emit: Emit) -> None:
        """The batch's embedding rows, in one encode."""
        items: list[tuple[BatchRow, list[str]]] = []
        for row in rows:
            inputs = row.body.get("input")
            texts = [inputs] if isinstance(inputs, str) else inputs
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                emit(error_result(row, "invalid_request", "input must be a string or strings", 400))
                continue
            items.append((row, texts))
        vectors = self._embedder().embed([text for _, texts in items for text in texts])
        start = 0
        for row, texts in items:
            mine, start = vectors[start : start + len(texts)], start + len(texts)
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(mine)]
            tokens = sum(len(t.split()) for t in texts)
            body = {
                "object": "list",
                "data": data,
                "model": self.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
            emit(ok_result(row, body))

    def _embedder(self) -> Any:
        """The sentence-transformers model, loaded on first use and kept."""
        from components.ingest.embedders import SentenceTransformerEmbedder

        if self._embedder_model is None:
            self._embedder_model = SentenceTransformerEmbedder(self.model_name, device=self.device)
        return self._embedder_model


def _found_model(model: str) -> str:
    """Where ``model`` is (a folder, the packaged MiniLM, a model in the local Hugging Face
    cache), or ModelNotFoundError naming it: nothing is downloaded."""
    from transformers import AutoConfig

    from components.ingest.embedders import resolve_model_path

    path = resolve_model_path(model)
    local = Path(path).expanduser()
    if local.exists() and not local.is_dir():
        raise ModelNotFoundError(f"model {model}: {local} is a file, not a model folder")
    try:
        AutoConfig.from_pretrained(str(local) if local.exists() else path)
    except Exception as exc:  # transformers raises OSError, ValueError and its own kinds
        reason = " ".join(str(exc).split())[:300]
        if not local.exists():
            reason = "no such folder, and not a model in the local Hugging Face cache"
        raise ModelNotFoundError(f"model {model} not found: {reason}") from None
    return str(local) if local.exists() else path
