"""The model-rollout pipeline on kfp.local with engine kubernetes, target kserve, against the fake
cluster (CRD-validating API server, KServe status controller, routes answering as the version it
runs) and a real S3 model store (moto through the minio client): a canary refused (one GPU);
v1 promoted; v2, whose route fails its gate, restored to v1 by the exit task."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.rollout.history import read_history
from components.settings import Settings
from components.storage.s3 import minio_client
from pipelines.local_run import LocalRunError, run_local
from testing.kube_cluster import FakeCluster, fake_cluster
from tests.components.rollout.conftest import write_model

NAME = "model-rollout"
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    with fake_cluster(tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def settings(cluster: FakeCluster, s3_settings: Settings) -> Settings:
    client = minio_client(s3_settings)
    if not client.bucket_exists("models"):
        client.make_bucket("models")
    s3 = {k: getattr(s3_settings, k) for k in ("s3_endpoint", "s3_access_key", "s3_secret_key",
                                                "s3_region", "s3_secure")}  # fmt: skip
    return cluster.settings(**s3, model_store_uri="s3://models/store")


def storage_uri(cluster: FakeCluster) -> str:
    found = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert found is not None
    return str(found["spec"]["predictor"]["model"]["storageUri"])


def test_a_kserve_canary_through_the_pipeline(
    cluster: FakeCluster, settings: Settings, tmp_path: Path, clean_env: None
) -> None:
    model = write_model(tmp_path / "model")
    base: dict[str, Any] = {"model": str(model), "app": "embeddings", "target": "kserve"}
    params = {**base, "rounds": 1}
    root = tmp_path / "kfp"
    # A canary would need a second copy of the GPU: refused, nothing applied nor recorded.
    with pytest.raises(LocalRunError, match="rollout-render: bad input: a canary") as refused:
        run_local(NAME, {**params, "version": "v0", "canary": 20}, settings, pipeline_root=root)
    assert refused.value.bad_input
    assert cluster.api.get("inferenceservices", "ai-ml", "embeddings") is None
    assert read_history("embeddings", settings) == []

    report = run_local(NAME, {**params, "version": "v1"}, settings, pipeline_root=root)
    assert report["outcome"] == "promoted" and report["engine"] == "kubernetes", report
    assert storage_uri(cluster) == "s3://models/store/embeddings/v1/"

    cluster.routes.broken.add("v2")
    with pytest.raises(LocalRunError, match=r"rollout-promote.*gate failed"):
        run_local(NAME, {**params, "version": "v2"}, settings, pipeline_root=root)
    assert storage_uri(cluster) == "s3://models/store/embeddings/v1/"
    found = cluster.api.get("inferenceservices", "ai-ml", "embeddings")
    assert found is not None and found["metadata"]["annotations"]["llmw.io/model-version"] == "v1"
    events = [
        (e["event"], e["version"], e.get("target")) for e in read_history("embeddings", settings)
    ]
    assert events == [
        ("started", "v1", "kserve"), ("gate", "v1", "kserve"), ("promoted", "v1", "kserve"),
        ("started", "v2", "kserve"), ("gate", "v2", "kserve"), ("rolled_back", "v2", "kserve"),
    ]  # fmt: skip
