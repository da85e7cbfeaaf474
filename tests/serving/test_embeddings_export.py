"""The embeddings app on an exported folder (ONNX Runtime, no torch model) and on the backend
the placement names, called as Ray Serve would call the deployment's class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.embedding_export.export import ExportRequest, build_export
from components.settings import Settings, get_settings
from tests.embedding_exports import small_gate_set


def deployment(model: str) -> Any:
    from serving.common import parse_args
    from serving.embeddings import Embedder

    # The class as written: @serve.deployment keeps it as func_or_class, whose @serve.ingress
    # subclass (an async __init__ that also starts the ASGI app) comes first in the MRO.
    cls = Embedder.func_or_class.__mro__[1]
    return cls(parse_args({"model": model, "served_model_name": "embeddings"}))


def vectors(app: Any, texts: list[str]) -> list[list[float]]:
    from serving.embeddings import EmbeddingsRequest

    reply = app.embeddings(EmbeddingsRequest(input=texts))
    assert reply.status_code == 200
    return [row["embedding"] for row in json.loads(reply.body)["data"]]


def test_an_exported_folder_is_served_on_its_backend(tmp_path: Path, minilm: Any) -> None:
    lenient = Settings(embedding_gate_max_recall_drop=1.0, embedding_gate_max_mrr_drop=1.0)
    request = ExportRequest("all-MiniLM-L6-v2", "onnx", "fp32")
    outcome = build_export(request, tmp_path / "onnx", lenient, small_gate_set(), minilm)
    app = deployment(str(outcome.folder))
    assert app.exported is not None and app.exported.backend == "onnx"
    texts = ["Milvus searches embeddings.", "The bridge reads NATS messages."]
    got, want = vectors(app, texts), minilm.embed(texts)
    for a, b in zip(got, want, strict=True):
        assert sum(x * y for x, y in zip(a, b, strict=True)) > 0.9999


def test_the_placements_backend_exports_the_served_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.embedding_export import export as export_module

    gate_set = small_gate_set()
    monkeypatch.setattr(export_module, "shipped_gate_set", lambda: gate_set)
    monkeypatch.setenv("LLMW_EMBEDDING_BACKEND", "openvino")  # what the Arc's placement sets
    monkeypatch.setenv("LLMW_EMBEDDING_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LLMW_EMBEDDING_GATE_MAX_RECALL_DROP", "1")
    monkeypatch.setenv("LLMW_EMBEDDING_GATE_MAX_MRR_DROP", "1")
    get_settings.cache_clear()
    try:
        app = deployment("all-MiniLM-L6-v2")
        assert app.exported is not None and app.exported.backend == "openvino"
        assert len(vectors(app, ["hello"])[0]) == 384
    finally:
        get_settings.cache_clear()
