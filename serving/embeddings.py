"""The embeddings application: a sentence-transformers model behind ``POST /v1/embeddings``.

``args.model`` is a model-store folder (what a rollout stages), an ``s3://`` prefix, or a model
name (``all-MiniLM-L6-v2`` is the packaged copy); a folder ``llmw embeddings export`` wrote runs
on its backend (ONNX Runtime or OpenVINO) as its manifest says. Vectors are unit length. The
deployment is ``Embedder`` (the serving catalog's name); Ray's ``ray_actor_options`` place it.
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
        from components.embedding_export.manifest import is_export
        from components.settings import get_settings

        self.args = args
        folder = model_folder(args.model)
        settings = get_settings()
        self.exported: Any = None
        # An exported folder runs on its backend; LLMW_EMBEDDING_BACKEND (set by placement for
        # the GPU's stack) onnx or openvino exports the model once (components.embedding_export).
        if is_export(folder) or settings.embedding_backend in ("onnx", "openvino"):
            from components.embedding_export.resolve import local_embedder

            self.exported = local_embedder(settings.model_copy(update={"embedding_model": folder}))
        else:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(folder, local_files_only=True)

    @api.get("/v1/models")
    def models(self) -> JSONResponse:
        return JSONResponse(models_reply(self.args), headers=headers(self.args))

    @api.post("/v1/embeddings")
    def embeddings(self, request: EmbeddingsRequest) -> JSONResponse:
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        if not texts:
            return JSONResponse({"error": {"message": "input is empty"}}, status_code=400)
        if self.exported is not None:
            vectors: Any = self.exported.embed(texts)
        else:
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
