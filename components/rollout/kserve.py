"""The KServe alternative: an application's model as an InferenceService (v1beta1, KServe v0.20).

Named after the application, so that it answers as ``<app>-predictor.<namespace>`` (the aliases
the cluster already has). Two deployment modes, two canary forms:

- ``Serverless`` (Knative): ``spec.predictor`` is the new model, and
  ``spec.predictor.canaryTrafficPercent`` the share of traffic it gets while KServe keeps the
  last rolled-out revision for the rest;
- ``RawDeployment``: ``spec.predictor`` stays the current model and ``spec.canary[]`` holds the
  new one with its ``trafficPercent``; without a canary the predictor is replaced with the
  ``Recreate`` strategy (the old pod goes before the new one starts).

Placement is ``place()``'s, as for the RayService: node selector, tolerations, the vendor's GPU
resource (whole devices) and the GPU's environment. The model comes from the store through
KServe's storage initializer, with the credentials of the service account that settings name
(``kserve_service_account``): no literal secret. Two predictors side by side (any canary, and
every Serverless revision change) hold two GPUs of the kind at once, which one-GPU-per-kind can
never schedule: ``check_capacity`` refuses that before anything is rendered for the cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from components.cluster.inventory import ClusterInventory
from components.cluster.placement import Placement, gpus_like
from components.rollout.application import ModelRef, RolloutRefused
from components.rollout.catalog import ServeApp, ServingCatalog
from components.rollout.crd import INFERENCESERVICE_CRD, assert_valid_crd, crd_path
from components.settings import Settings

API_VERSION = "serving.kserve.io/v1beta1"
MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
DeploymentMode = Literal["Serverless", "RawDeployment"]


def storage_uri(model: ModelRef) -> str:
    """Where KServe's storage initializer fetches the model: ``s3://`` (the store) or ``hf://``
    (a Hugging Face id, before a first rollout); a local folder is refused."""
    uri = model.uri
    if "://" in uri:
        return uri
    if uri.startswith(("/", ".", "~")) or "/" not in uri:
        raise RolloutRefused(
            "store",
            f"KServe cannot fetch the model at {uri}: stage it into the MinIO model store "
            "(LLMW_MODEL_STORE_URI=s3://bucket) for a KServe rollout",
        )
    return f"hf://{uri}"


def needs_second_gpu(mode: DeploymentMode, canary_percent: int | None) -> bool:
    """Whether the old and the new predictor would run at once (each with a whole GPU)."""
    return mode == "Serverless" or canary_percent is not None


def check_capacity(
    placement: Placement,
    inventory: ClusterInventory,
    mode: DeploymentMode,
    canary_percent: int | None,
) -> None:
    """RolloutRefused when the rollout needs a second GPU of a kind the cluster has one of."""
    if placement.resource is None or not needs_second_gpu(mode, canary_percent):
        return
    have = gpus_like(placement, inventory)
    if have < 2:
        why = "a canary" if canary_percent is not None else "a Serverless revision change"
        raise RolloutRefused(
            "placement",
            f"{why} runs the old and the new predictor side by side, each holding a whole "
            f"{placement.accelerator} ({placement.resource}), and the cluster has {have}: it "
            "could never schedule. Roll out through the RayService (in place), or RawDeployment "
            "without --canary (Recreate)",
        )


def predictor(
    app: ServeApp,
    model: ModelRef,
    placement: Placement,
    catalog: ServingCatalog,
    settings: Settings,
) -> dict[str, Any]:
    """A predictor serving ``model`` where ``placement`` says."""
    rayservice = catalog.rayservice
    sized = rayservice.worker_resources_by_node.get(
        placement.node or "", rayservice.worker_resources
    )
    gpu = {placement.resource: placement.count} if placement.resource else {}
    container: dict[str, Any] = {
        # KServe's own name for it; a canary's predictor must name its container (its schema).
        "name": "kserve-container",
        "modelFormat": {"name": app.kserve_model_format},
        "storageUri": storage_uri(model),
        "args": [f"--model_name={app.name}"],
    }
    if placement.env:
        container["env"] = [{"name": k, "value": v} for k, v in sorted(placement.env.items())]
    container["resources"] = {
        "requests": {**sized.requests, **gpu},
        "limits": {**sized.limits, **gpu},
    }
    spec: dict[str, Any] = {"serviceAccountName": settings.kserve_service_account}
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        spec["tolerations"] = [dict(t) for t in placement.tolerations]
    spec["model"] = container
    return spec


def render_inferenceservice(
    app: ServeApp,
    model: ModelRef,
    placement: Placement,
    catalog: ServingCatalog,
    settings: Settings,
    mode: DeploymentMode,
    canary_percent: int | None = None,
    stable: ModelRef | None = None,
) -> dict[str, Any]:
    """The InferenceService rolling ``app`` out to ``model`` (``stable``: what it serves now,
    needed by a RawDeployment canary). Not yet validated: see ``validate``."""
    if canary_percent is not None and not 0 < canary_percent < 100:
        raise ValueError(f"--canary {canary_percent}: a canary takes 1 to 99 percent")
    new = predictor(app, model, placement, catalog, settings)
    spec: dict[str, Any]
    if mode == "Serverless":
        if canary_percent is not None:
            new = {"canaryTrafficPercent": canary_percent, **new}
        spec = {"predictor": new}
    elif canary_percent is None:
        spec = {"predictor": {"deploymentStrategy": {"type": "Recreate"}, **new}}
    else:
        if stable is None:
            raise ValueError("a RawDeployment canary needs the model served now (stable)")
        current = predictor(app, stable, placement, catalog, settings)
        spec = {
            "predictor": current,
            "canary": [{"trafficPercent": canary_percent, "predictor": new}],
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": app.name,
            "namespace": catalog.rayservice.namespace,
            "annotations": {MODE_ANNOTATION: mode},
            "labels": {
                "app.kubernetes.io/name": app.name,
                "app.kubernetes.io/part-of": "llm-workflows",
                "app.kubernetes.io/managed-by": "llmw",
            },
        },
        "spec": spec,
    }


def validate(document: dict[str, Any], settings: Settings, schemas_dir: Path | None = None) -> None:
    """SchemaViolationError unless ``document`` passes the pinned KServe v0.20.0 CRD strictly."""
    assert_valid_crd(document, crd_path(schemas_dir or settings.schemas_dir, INFERENCESERVICE_CRD))
