"""Generation engines for serving/llm.py: transformers (CPU) and vLLM (GPU, import-guarded)."""

from __future__ import annotations

import importlib.util
from typing import Any, Protocol

from serving.common import ModelArgs, model_folder


class Engine(Protocol):
    def chat_prompt(self, messages: list[dict[str, str]]) -> str: ...

    def generate(self, prompt: str, max_tokens: int, temperature: float) -> tuple[str, int, int]:
        """The completion, the prompt's token count and the completion's."""
        ...


def _plain_chat(messages: list[dict[str, str]]) -> str:
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


class TransformersEngine:
    def __init__(self, folder: str) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
        self.model.eval()

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return _plain_chat(messages)

    def generate(self, prompt: str, max_tokens: int, temperature: float) -> tuple[str, int, int]:
        inputs = self.tokenizer(prompt, return_tensors="pt")
        config = self.model.config
        limit = getattr(config, "n_positions", None) or getattr(
            config, "max_position_embeddings", None
        )
        keep = max(1, int(limit or 2048) - max_tokens)
        ids = inputs["input_ids"][:, -keep:]
        options: dict[str, Any] = {"max_new_tokens": max_tokens, "do_sample": temperature > 0}
        if temperature > 0:
            options["temperature"] = temperature
        with self.torch.no_grad():
            # transformers 5.19 types the Auto class's generate with a self type it lacks.
            out = self.model.generate(  # type: ignore[misc]
                ids,
                attention_mask=self.torch.ones_like(ids),
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                **options,
            )
        new = out[0, ids.shape[1] :]
        text = str(self.tokenizer.decode(new, skip_special_tokens=True))
        return text, int(ids.shape[1]), len(new)


class VLLMEngine:
    def __init__(self, folder: str) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError:  # vLLM needs a GPU and is not installed on CPU machines
            raise RuntimeError(
                "engine vllm: vLLM is not installed (pip install 'llm-workflows[gpu]' on a GPU "
                "node); use engine transformers on the CPU"
            ) from None
        self.sampling = SamplingParams
        self.llm = LLM(model=folder)

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        tokenizer = self.llm.get_tokenizer()
        if getattr(tokenizer, "chat_template", None):
            return str(
                tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            )
        return _plain_chat(messages)

    def generate(self, prompt: str, max_tokens: int, temperature: float) -> tuple[str, int, int]:
        params = self.sampling(max_tokens=max_tokens, temperature=temperature)
        result = self.llm.generate([prompt], params)[0]
        completion = result.outputs[0]
        return completion.text, len(result.prompt_token_ids), len(completion.token_ids)


def _gpu() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def open_engine(args: ModelArgs) -> Engine:
    """The engine ``args.engine`` names (``auto``: vLLM with a GPU and vLLM, else transformers)."""
    folder = model_folder(args.model)
    engine = args.engine
    if engine == "auto":
        has_vllm = importlib.util.find_spec("vllm") is not None
        engine = "vllm" if has_vllm and _gpu() else "transformers"
    if engine == "vllm":
        return VLLMEngine(folder)
    if engine == "transformers":
        return TransformersEngine(folder)
    raise ValueError(f"engine {args.engine!r}: use auto, transformers or vllm")
