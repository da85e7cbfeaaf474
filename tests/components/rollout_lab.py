"""Fixtures of the embedding rollout tests: a corpus ingested behind the alias, two models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.embedding_rollout.models import RolloutParams
from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.settings import Settings
from testing.embedding_models import build_projected_minilm, build_scrambled_minilm
from tests.components.rollout_helpers import write_corpus, write_queries


@dataclass
class Lab:
    docs: Path
    files: dict[str, Path]
    queries: Path
    settings: Settings

    @property
    def uri(self) -> str:
        return self.settings.milvus_uri

    def client(self) -> Any:
        from pymilvus import MilvusClient

        return MilvusClient(self.uri)

    def collections(self) -> list[str]:
        client = self.client()
        try:
            return sorted(client.list_collections())
        finally:
            client.close()

    def target(self, alias: str = "documents") -> str | None:
        from components.ingest.generations import alias_target

        client = self.client()
        try:
            return alias_target(client, alias)
        finally:
            client.close()

    def properties(self, name: str) -> dict[str, str]:
        client = self.client()
        try:
            return dict(client.describe_collection(name)["properties"])
        finally:
            client.close()


def second_models_at(base: Path) -> dict[str, str]:
    """Two more sentence-transformers models, by path, built once under ``base`` (a session's
    temporary root): MiniLM projected to 128 dimensions (retrieves about as well) and MiniLM with
    random weights (retrieves about as well as chance)."""
    folder = base / "rollout-models"
    models = {"projected": folder / "projected128", "scrambled": folder / "scrambled"}
    if not (folder / ".complete").exists():
        build_projected_minilm(models["projected"])
        build_scrambled_minilm(models["scrambled"])
        (folder / ".complete").write_text("")
    return {name: str(path) for name, path in models.items()}


def make_lab(tmp_path: Path, make_settings: Any, ingested: bool = True) -> Lab:
    files = write_corpus(tmp_path / "docs")
    queries = write_queries(tmp_path / "queries.jsonl", files)
    settings = make_settings(run_data_uri=str(tmp_path / "runs"))
    if ingested:
        report = ingest(IngestParams(source=str(tmp_path / "docs")), settings)
        assert report.documents.new == len(files)
    return Lab(tmp_path / "docs", files, queries, settings)


def params(lab: Lab, model: str, **extra: Any) -> RolloutParams:
    """A rollout of ``lab``'s alias to ``model``, gated on the lab's queries at k=3."""
    return RolloutParams(model=model, queries=str(lab.queries), top_k=3, **extra)
