"""The remote embeddings path against a local server that checks requests like OpenAI's API."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from components.ingest.embedders import EmbeddingError, OpenAIEmbedder, make_embedder
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from testing.documents import topic, write_document
from testing.openai_server import EmbeddingsServer, fake_vector
from tests.milvus_rows import read_rows


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def test_batches_are_ordered_by_index_and_normalized() -> None:
    with EmbeddingsServer(dimension=8, api_key="s3cret") as server:
        embedder = OpenAIEmbedder(server.url, "bge-large", api_key="s3cret", batch_size=3)
        texts = [f"text {i}" for i in range(7)]
        vectors = embedder.embed(texts)
    assert embedder.dimension == 8
    assert len(vectors) == 7
    for text, vector in zip(texts, vectors, strict=True):
        expected = fake_vector(text, 8)
        assert vector == pytest.approx([x / norm(expected) for x in expected])
    sizes = [len(r["input"]) for r in server.requests]
    # The dimension probe first; then the batches, sent concurrently, in any order.
    assert sizes[0] == 1 and sorted(sizes[1:]) == [1, 3, 3]
    assert not server.contract_violations


def test_concurrency_is_bounded() -> None:
    # Requests are held until three are in flight at once: a client that never sends three
    # together fails (max 1 or 2), one that sends more than three fails too.
    with EmbeddingsServer(delay_s=0.05) as server:
        embedder = OpenAIEmbedder(server.url, "m", batch_size=2, concurrency=3)
        server.hold(3)  # after the dimension probe, which is sent alone
        embedder.embed([f"t{i}" for i in range(20)])
    assert server.max_in_flight == 3


def test_429_and_500_are_retried() -> None:
    with EmbeddingsServer() as server:
        embedder = OpenAIEmbedder(server.url, "m", backoff_s=0.01)
        server.failures.extend([429, 500, 503])
        assert len(embedder.embed(["a", "b"])) == 2
    assert len(server.requests) == 1 + 4


def test_persistent_failures_raise_a_clear_error() -> None:
    with EmbeddingsServer() as server:
        embedder = OpenAIEmbedder(server.url, "m", max_retries=2, backoff_s=0.01)
        server.failures.extend([500] * 3)
        with pytest.raises(EmbeddingError, match=r"failed after 3 attempts: HTTP 500"):
            embedder.embed(["a"])


def test_a_wrong_api_key_is_not_retried() -> None:
    with EmbeddingsServer(api_key="right") as server, pytest.raises(EmbeddingError, match="401"):
        OpenAIEmbedder(server.url, "m", api_key="wrong")
    assert len(server.requests) == 0


def test_timeouts_are_retried() -> None:
    with EmbeddingsServer() as server:
        embedder = OpenAIEmbedder(server.url, "m", timeout_s=0.2, backoff_s=0.01)
        server.delay_s = 0.5
        with pytest.raises(EmbeddingError, match="ReadTimeout"):
            embedder.embed(["a"])
        server.delay_s = 0.0
        assert len(embedder.embed(["a"])) == 1


def test_ingest_through_the_remote_endpoint(tmp_path: Path, make_settings: Any) -> None:
    for i, suffix in enumerate([".md", ".pdf"]):
        write_document(tmp_path / "docs" / f"d{i}{suffix}", "D", topic(f"s{i}", words=150))
    with EmbeddingsServer(dimension=32) as server:
        settings = make_settings(
            embedding_url=server.url, embedding_model="bge-large-en-v1.5", embedding_batch_size=4
        )
        report = ingest(IngestParams(source=str(tmp_path / "docs")), settings)
        assert report.documents.new == 2
        rows = read_rows(settings.milvus_uri)
        assert len(rows) == report.chunks
        assert all(len(r["input"]) <= 4 for r in server.requests)
        assert all(r["model"] == "bge-large-en-v1.5" for r in server.requests)

        # The endpoint goes down: the changed document fails with the reason, nothing is lost.
        write_document(tmp_path / "docs" / "d0.md", "D", topic("changed"))
        down = settings.model_copy(update={"embedding_max_retries": 1})
        embedder = make_embedder(down)  # the dimension probe still gets through
        server.failures.extend([500] * 100)
        report = ingest(IngestParams(source=str(tmp_path / "docs")), down, embedder=embedder)
    assert report.documents.failed == 1
    assert "HTTP 500" in report.failures[0].error
    assert read_rows(settings.milvus_uri) == rows, "the old version stays until a new one lands"
    assert not server.contract_violations
