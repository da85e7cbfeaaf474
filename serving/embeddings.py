"""The embeddings application: a sentence-transformers model behind ``POST /v1/embeddings``.

``args.model`` is a model-store folder (what a rollout stages), an ``s3://`` prefix, or a model
name (``all-MiniLM-L6-v2`` is the packaged copy). Vectors are unit length. The deployment is
``Embedder`` (the serving catalog's name); Ray's ``ray_actor_options`` place it.
"""

# No `from __future__ import annotations`: FastAPI reads the request models from the
# annotations of the methods Ray Serve wraps, which must be real classes.
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from ray import serve
from ray.serve import Application

from serving.common import ModelArgs, headers, model_folder, models_reply, parse_args

api = FastAPI(title="llmw embeddings")


class EmbeddingsRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: str = "float"


@serve.deployment(name="Embedder")
@serve.ingress(api)
class Embedder:
    def __init__(self, args: ModelArgs) -> None:
        from sentence_transformers import SentenceTransformer

        self.args = args
        self.model = SentenceTransformer(model_folder(args.model), local_files_only=True)

    @api.get("/v1/models")
    def models(self) -> JSONResponse:
        return JSONResponse(models_reply(self.args), headers=headers(self.args))

    @api.post("/v1/embeddings")
    def embeddings(self, request: EmbeddingsRequest) -> JSONResponse:
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        if not texts:
            return JSONResponse({"error": {"message": "input is empty"}}, status_code=400)
        vectors = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        tokens = sum(len(text.split()) for text in texts)
        body: dict[str, Any] = {
            "object": "list",
            "model": self.args.served_model_name,
            "data": [
                {"object": "embedding", "index": i, "embedding": [float(x) for x in vector]}
                for i, vector in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return JSONResponse(body, headers=headers(self.args))


def app(args: dict[str, Any]) -> Application:
    """The builder the serve config names (``serving.embeddings:app``)."""
    return Embedder.bind(parse_args(args))  # type: ignore[attr-defined]
