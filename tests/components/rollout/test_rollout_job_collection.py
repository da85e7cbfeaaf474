"""The model-rollout job's collection target (issue 13's embeddings step) on Milvus Lite: the staged
model's folder rolled out behind the alias (the collection records it), the outcome kept, and a
rolled-back rollout failing the run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.rollout.job_collection import (
    collection_metrics,
    collection_outcome,
    collection_step,
    embedding_model,
)
from components.rollout.job_params import read_params
from components.rollout.job_steps import GateFailedError, read_outcome, stage_step
from tests.components.rollout_lab import Lab

pytestmark = pytest.mark.slow


@pytest.fixture
def job_lab(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """The lab's Milvus and run data, and a model store, as the job's steps read settings."""
    from components.settings import get_settings

    for name, value in (
        ("MILVUS_URI", lab.uri),
        ("RUN_DATA_URI", str(tmp_path / "runs")),
        ("MODEL_STORE_URI", str(tmp_path / "store")),
        ("PARTITION_WORKERS", "0"),
    ):
        monkeypatch.setenv(f"LLMW_{name}", value)
    get_settings.cache_clear()
    yield lab
    get_settings.cache_clear()


def test_the_staged_model_is_rolled_out_behind_the_alias(
    job_lab: Lab, second_models: dict[str, str]
) -> None:
    given: dict[str, Any] = {
        "model": second_models["projected"],
        "app": "embeddings",
        "version": "p128",
        "target": "collection",
        "queries": str(job_lab.queries),
        "top_k": 3,
    }
    staged = stage_step(given)
    report = collection_step(given, staged)
    assert report["outcome"] == "promoted" and report["dimension"] == 128
    assert job_lab.target() == report["live"] != report["previous"]
    # Readers load the model the collection records: the staged version's folder, which stays.
    recorded = job_lab.properties(report["live"])["llmw.model"]
    assert Path(recorded).resolve() == Path(staged["uri"]).resolve()
    metrics = collection_metrics(report)
    assert metrics["passed"] == 1.0 and metrics["new_recall"] >= metrics["old_recall"] - 0.05

    outcome = collection_outcome(given, report)
    assert outcome["outcome"] == "promoted" and outcome["collection"]["live"] == report["live"]
    assert read_outcome(given) == outcome  # what the engines' last step reports

    failed = {**report, "outcome": "rolled_back", "live": report["previous"]}
    failed["gate"] = {**report["gate"], "reasons": ["recall@3 dropped by 0.4"]}
    with pytest.raises(GateFailedError, match=r"recall@3 dropped by 0\.4; alias documents"):
        collection_outcome(given, failed)


def test_the_model_must_be_loadable_here() -> None:
    params = read_params(
        {"model": "s3://in/m", "app": "embeddings", "version": "v", "target": "collection",
         "queries": "q.jsonl"}
    )  # fmt: skip
    assert embedding_model(params, {"uri": "/store/embeddings/v/"}) == "/store/embeddings/v/"
    local = params.model_copy(update={"model": "/models/m"})
    assert embedding_model(local, {"uri": "s3://models/embeddings/v/"}) == "/models/m"
    with pytest.raises(ValueError, match="sentence-transformers cannot load"):
        embedding_model(params, {"uri": "s3://models/embeddings/v/"})
