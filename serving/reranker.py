"""The reranking application: ``POST /v1/rerank`` (the Cohere/Jina shape vLLM also serves).

A cross-encoder (a model folder whose config names a ``...ForSequenceClassification``
architecture) scores each (query, document) pair; any other sentence-transformers model is used
as a bi-encoder (cosine of the query's and each document's vector), which is what works offline
here with the packaged MiniLM. The deployment is ``Reranker`` (the serving catalog's name).
"""

# No `from __future__ import annotations`: FastAPI reads the request models from the
# annotations of the methods Ray Serve wraps, which must be real classes.
import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from ray import serve
from ray.serve import Application

from serving.common import ModelArgs, headers, model_folder, models_reply, parse_args

api = FastAPI(title="llmw reranker")


class RerankRequest(BaseModel):
    query: str
    documents: list[str] = Field(min_length=1)
    model: str | None = None
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False


def is_cross_encoder(folder: str) -> bool:
    config = Path(folder) / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text(encoding="utf-8")).get("architectures") or []
    return any(str(a).endswith("ForSequenceClassification") for a in architectures)


@serve.deployment(name="Reranker")
@serve.ingress(api)
class Reranker:
    def __init__(self, args: ModelArgs) -> None:
        from sentence_transformers import CrossEncoder, SentenceTransformer

        self.args = args
        folder = model_folder(args.model)
        self.cross = is_cross_encoder(folder)
        loader = CrossEncoder if self.cross else SentenceTransformer
        self.model: Any = loader(folder, local_files_only=True)
        self.kind = "cross-encoder" if self.cross else "bi-encoder"

    def scores(self, query: str, documents: list[str]) -> list[float]:
        if self.cross:
            return [float(s) for s in self.model.predict([(query, d) for d in documents])]
        vectors = self.model.encode([query, *documents], normalize_embeddings=True)
        return [float(vectors[0] @ v) for v in vectors[1:]]

    @api.get("/v1/models")
    def models(self) -> JSONResponse:
        return JSONResponse(models_reply(self.args), headers=headers(self.args))

    @api.post("/v1/rerank")
    def rerank(self, request: RerankRequest) -> JSONResponse:
        scores = self.scores(request.query, request.documents)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: request.top_n]
        results: list[dict[str, Any]] = []
        for i in order:
            result: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
            if request.return_documents:
                result["document"] = {"text": request.documents[i]}
            results.append(result)
        body = {"model": self.args.served_model_name, "scorer": self.kind, "results": results}
        return JSONResponse(body, headers=headers(self.args))


def app(args: dict[str, Any]) -> Application:
    """The builder the serve config names (``serving.reranker:app``)."""
    return Reranker.bind(parse_args(args))  # type: ignore[attr-defined]
