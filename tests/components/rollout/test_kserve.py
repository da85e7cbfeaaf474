"""The KServe alternative: Serverless and RawDeployment canaries, strict schema, capacity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from components.cluster.inventory import load_inventory
from components.orchestration.schema_validation import SchemaViolationError
from components.rollout import kserve
from components.rollout.application import ModelRef, RolloutRefused, place_app
from components.rollout.crd import INFERENCESERVICE_CRD, crd_problems
from tests.components.rollout.conftest import inventory_with, node_of

NEW = ModelRef("s3://models/embeddings/v2/", "v2", "cd" * 32)
STABLE = ModelRef("BAAI/bge-large-en-v1.5")


@pytest.fixture(scope="module")
def embeddings(catalog: Any, inventory: Any) -> tuple[Any, Any]:
    app = catalog.app("embeddings")
    return app, place_app(app, 1.5, inventory)


def render(embeddings: Any, catalog: Any, settings: Any, mode: Any, canary: int | None) -> Any:
    app, placement = embeddings
    document = kserve.render_inferenceservice(
        app, NEW, placement, catalog, settings, mode, canary, STABLE
    )
    kserve.validate(document, settings)
    return document


def check_predictor(predictor: dict[str, Any], uri: str) -> None:
    assert predictor["serviceAccountName"] == "llmw-models"
    assert predictor["nodeSelector"] == {"kubernetes.io/hostname": "drizzt"}
    model = predictor["model"]
    assert model["modelFormat"] == {"name": "huggingface"}
    assert model["storageUri"] == uri
    assert model["env"] == [
        {"name": "HSA_OVERRIDE_GFX_VERSION", "value": "10.3.0"},
        {"name": "LLMW_EMBEDDING_BACKEND", "value": "torch"},
    ]
    assert model["resources"]["limits"]["amd.com/gpu"] == 1
    assert model["resources"]["requests"]["amd.com/gpu"] == 1


def test_serverless_canary(embeddings: Any, catalog: Any, shipped: Any) -> None:
    document = render(embeddings, catalog, shipped, "Serverless", 10)
    assert document["apiVersion"] == "serving.kserve.io/v1beta1"
    assert document["metadata"]["name"] == "embeddings"  # embeddings-predictor.ai-ml
    assert document["metadata"]["namespace"] == "ai-ml"
    assert document["metadata"]["annotations"] == {"serving.kserve.io/deploymentMode": "Serverless"}
    assert list(document["spec"]) == ["predictor"]
    predictor = document["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    check_predictor(predictor, "s3://models/embeddings/v2/")


def test_raw_deployment_canary_keeps_the_current_model_as_the_predictor(
    embeddings: Any, catalog: Any, shipped: Any
) -> None:
    document = render(embeddings, catalog, shipped, "RawDeployment", 25)
    annotations = document["metadata"]["annotations"]
    assert annotations == {"serving.kserve.io/deploymentMode": "RawDeployment"}
    spec = document["spec"]
    assert "canaryTrafficPercent" not in spec["predictor"]
    check_predictor(spec["predictor"], "hf://BAAI/bge-large-en-v1.5")
    (canary,) = spec["canary"]
    assert canary["trafficPercent"] == 25
    check_predictor(canary["predictor"], "s3://models/embeddings/v2/")


def test_raw_deployment_without_a_canary_recreates(
    embeddings: Any, catalog: Any, shipped: Any
) -> None:
    document = render(embeddings, catalog, shipped, "RawDeployment", None)
    assert document["spec"]["predictor"]["deploymentStrategy"] == {"type": "Recreate"}
    assert "canary" not in document["spec"]
    check_predictor(document["spec"]["predictor"], "s3://models/embeddings/v2/")


def test_the_strict_schema_and_no_literal_secret(
    embeddings: Any, catalog: Any, shipped: Any, schemas_dir: Path
) -> None:
    settings = shipped.model_copy(update={"s3_access_key": "AKIA-LEAK", "s3_secret_key": "hush"})
    document = render(embeddings, catalog, settings, "RawDeployment", 10)
    text = json.dumps(document)
    assert "AKIA-LEAK" not in text and "hush" not in text
    crd = schemas_dir / INFERENCESERVICE_CRD
    assert crd_problems(document, crd) == []
    broken = json.loads(text)
    broken["spec"]["canary"][0]["trafficPercent"] = 150
    broken["spec"]["predictor"]["canaryTrafficPercentage"] = 10
    assert crd_problems(broken, crd) == [
        "spec.canary[0].trafficPercent: 150 is greater than the maximum of 100",
        "spec.predictor.canaryTrafficPercentage: additional property not allowed",
    ]
    with pytest.raises(SchemaViolationError, match="canaryTrafficPercentage"):
        kserve.validate(broken, settings)


@pytest.mark.parametrize("canary", [0, 100])
def test_a_canary_is_a_share(embeddings: Any, catalog: Any, shipped: Any, canary: int) -> None:
    with pytest.raises(ValueError, match="1 to 99 percent"):
        render(embeddings, catalog, shipped, "Serverless", canary)


def test_a_local_folder_is_not_a_storage_uri() -> None:
    with pytest.raises(RolloutRefused, match="stage it into the MinIO model store") as refused:
        kserve.storage_uri(ModelRef("/home/me/.llmw/models/embeddings/v2/"))
    assert refused.value.reason == "store"
    assert kserve.storage_uri(STABLE) == "hf://BAAI/bge-large-en-v1.5"


def test_two_predictors_need_two_gpus_of_the_kind(
    embeddings: Any, catalog: Any, inventory: Any, tmp_path: Path
) -> None:
    _, placement = embeddings
    kserve.check_capacity(placement, inventory, "RawDeployment", None)  # Recreate: one GPU
    for mode, canary in (("RawDeployment", 10), ("Serverless", 10), ("Serverless", None)):
        with pytest.raises(RolloutRefused, match="the cluster has 1: it could never schedule"):
            kserve.check_capacity(placement, inventory, mode, canary)  # type: ignore[arg-type]

    def two_gpus(data: dict[str, Any]) -> None:
        node_of(data, "drizzt")["gpu"]["count"] = 2

    doubled = load_inventory(inventory_with(tmp_path, two_gpus))
    kserve.check_capacity(
        place_app(catalog.app("embeddings"), 1.5, doubled), doubled, "Serverless", 10
    )
