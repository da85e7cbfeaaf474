"""The serving/ applications on a real Ray Serve (ray-local): the cluster's serve config
entries (route, import path, deployment, GPU share, node resource) with local models, applied
with PUT /api/serve/applications/; each answers its OpenAI paths under its route prefix."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from components.rollout.ray_local import VERSION_HEADER, RayLocal, app_statuses
from components.rollout.rayservice import render_rayservice
from components.rollout.serve_config import parse_serve_config
from testing.ray_local import running_ray_local
from testing.tiny_lm import build_tiny_lm

pytestmark = pytest.mark.slow
APPS = ("embeddings", "reranker", "llm", "whisper")


def wait_settled(ray: RayLocal, timeout: float = 240) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        apps = app_statuses(ray.details())
        settled = all(apps.get(a, {}).get("status") in ("RUNNING", "DEPLOY_FAILED") for a in APPS)
        if settled or time.monotonic() > deadline:
            return apps
        time.sleep(1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    lm = build_tiny_lm(tmp_path_factory.mktemp("lm") / "tiny")
    with running_ray_local() as (settings, ray):
        config = parse_serve_config(render_rayservice(settings)["spec"]["serveConfigV2"])
        models = {"embeddings": "all-MiniLM-L6-v2", "reranker": "all-MiniLM-L6-v2"}
        models |= {"llm": str(lm), "whisper": "openai/whisper-medium"}
        apps = [a for a in config["applications"] if a["name"] in APPS]
        for app in apps:
            app["args"] = {**app["args"], "model": models[app["name"]], "model_version": "t1"}
            if app["name"] == "llm":
                app["args"]["engine"] = "auto"
        ray.apply({**config, "applications": apps})
        yield ray.http_url, wait_settled(ray)


def test_embeddings(served: tuple[str, dict[str, Any]]) -> None:
    url, apps = served
    assert apps["embeddings"]["status"] == "RUNNING", apps["embeddings"]
    reply = httpx.post(f"{url}/embeddings/v1/embeddings", json={"input": ["a", "b"]}, timeout=60)
    assert reply.status_code == 200 and reply.headers[VERSION_HEADER] == "t1"
    body = reply.json()
    assert [d["index"] for d in body["data"]] == [0, 1] and body["model"] == "embeddings"
    vector = body["data"][0]["embedding"]
    assert len(vector) == 384 and abs(sum(x * x for x in vector) - 1) < 1e-3
    models = httpx.get(f"{url}/embeddings/v1/models", timeout=30).json()
    assert models["data"][0]["id"] == "embeddings"
    assert httpx.post(f"{url}/embeddings/v1/embeddings", json={}, timeout=30).status_code == 422


def test_reranker_orders_by_relevance(served: tuple[str, dict[str, Any]]) -> None:
    url, apps = served
    assert apps["reranker"]["status"] == "RUNNING", apps["reranker"]
    documents = ["Bake the bread for an hour.", "Milvus searches vectors by similarity."]
    body = {"query": "vector database", "documents": documents, "return_documents": True}
    reply = httpx.post(f"{url}/reranker/v1/rerank", json=body, timeout=60).json()
    assert reply["scorer"] == "bi-encoder"  # MiniLM is no cross-encoder: the offline fallback
    assert [r["index"] for r in reply["results"]] == [1, 0]
    assert reply["results"][0]["document"]["text"] == documents[1]


def test_llm_completions_and_chat(served: tuple[str, dict[str, Any]]) -> None:
    url, apps = served
    assert apps["llm"]["status"] == "RUNNING", apps["llm"]
    body = {"prompt": "Milvus is", "max_tokens": 5}
    first = httpx.post(f"{url}/llm/v1/completions", json=body, timeout=60).json()
    again = httpx.post(f"{url}/llm/v1/completions", json=body, timeout=60).json()
    assert first["choices"][0]["text"] == again["choices"][0]["text"]  # greedy
    assert first["usage"]["completion_tokens"] == 5 and first["object"] == "text_completion"
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    reply = httpx.post(f"{url}/llm/v1/chat/completions", json=chat, timeout=60).json()
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["usage"]["completion_tokens"] == 3


def test_whisper_refuses_clearly(served: tuple[str, dict[str, Any]]) -> None:
    _, apps = served
    assert apps["whisper"]["status"] == "DEPLOY_FAILED"
    assert "Whisper) is not built in llm-workflows" in apps["whisper"]["message"]


def test_vllm_engine_is_import_guarded(tmp_path: Path) -> None:
    from serving.common import ModelArgs
    from serving.llm_engines import open_engine

    args = ModelArgs(model=str(tmp_path), served_model_name="llm", engine="vllm")
    with pytest.raises(RuntimeError, match="vLLM is not installed"):
        open_engine(args)
