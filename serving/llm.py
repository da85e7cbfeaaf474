"""The generation application: ``POST /v1/completions`` and ``POST /v1/chat/completions``.

The engine is vLLM where it can run (``args.engine`` ``vllm``, or ``auto`` with vLLM installed
and a GPU visible: serving/llm_engines.py, behind an import guard, since vLLM needs a GPU and is
not installed here), else transformers on the CPU. Decoding is greedy unless ``temperature`` > 0.
The deployment is ``LLMServer`` (the serving catalog's name).
"""

# No `from __future__ import annotations`: FastAPI reads the request models from the
# annotations of the methods Ray Serve wraps, which must be real classes.
import time
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from serving.common import ModelArgs, headers, models_reply, parse_args
from serving.llm_engines import open_engine

api = FastAPI(title="llmw llm")


class CompletionRequest(BaseModel):
    prompt: str
    model: str | None = None
    max_tokens: int = Field(16, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0)


class Message(BaseModel):
    role: str
    content: str


class ChatRequest(BaseModel):
    messages: list[Message] = Field(min_length=1)
    model: str | None = None
    max_tokens: int = Field(16, ge=1, le=4096)
    temperature: float = Field(0.0, ge=0.0)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@serve.deployment(name="LLMServer")
@serve.ingress(api)
class LLMServer:
    def __init__(self, args: ModelArgs) -> None:
        self.args = args
        self.engine = open_engine(args)

    def _reply(self, kind: str, choice: dict[str, Any], usage: dict[str, int]) -> JSONResponse:
        body = {
            "id": f"{kind}-{uuid.uuid4().hex[:16]}",
            "object": kind,
            "created": int(time.time()),
            "model": self.args.served_model_name,
            "choices": [{"index": 0, "finish_reason": "length", **choice}],
            "usage": usage,
        }
        return JSONResponse(body, headers=headers(self.args))

    @api.get("/v1/models")
    def models(self) -> JSONResponse:
        return JSONResponse(models_reply(self.args), headers=headers(self.args))

    @api.post("/v1/completions")
    def completions(self, request: CompletionRequest) -> JSONResponse:
        text, prompt_n, out_n = self.engine.generate(
            request.prompt, request.max_tokens, request.temperature
        )
        return self._reply("text_completion", {"text": text}, _usage(prompt_n, out_n))

    @api.post("/v1/chat/completions")
    def chat(self, request: ChatRequest) -> JSONResponse:
        prompt = self.engine.chat_prompt([m.model_dump() for m in request.messages])
        text, prompt_n, out_n = self.engine.generate(
            prompt, request.max_tokens, request.temperature
        )
        message = {"message": {"role": "assistant", "content": text}}
        return self._reply("chat.completion", message, _usage(prompt_n, out_n))


def app(args: dict[str, Any]) -> Application:
    """The builder the serve config names (``serving.llm:app``)."""
    return LLMServer.bind(parse_args(args))  # type: ignore[attr-defined]
