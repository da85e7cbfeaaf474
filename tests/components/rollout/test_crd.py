"""Strict validation against the pinned CRDs: the version by apiVersion, the kind, open maps."""

from __future__ import annotations

from pathlib import Path

from components.rollout.crd import INFERENCESERVICE_CRD, RAYSERVICE_CRD, crd_problems


def test_kind_and_api_version_are_the_crds(schemas_dir: Path) -> None:
    crd = schemas_dir / RAYSERVICE_CRD
    doc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "x"}, "spec": {}}
    assert crd_problems(doc, crd) == [
        "kind: expected 'RayService', got 'RayCluster'",
        "spec: 'rayClusterConfig' is a required property",
    ]
    other = {**doc, "kind": "RayService", "apiVersion": "serving.kserve.io/v1beta1"}
    assert crd_problems(other, crd)[0].startswith("apiVersion: 'serving.kserve.io/v1beta1'")
    assert crd_problems(["not", "a", "mapping"], crd) == ["(root): expected a mapping, got list"]


def test_maps_and_int_or_string_stay_open(schemas_dir: Path) -> None:
    doc = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "x", "annotations": {"anything/goes": "here"}},
        "spec": {
            "predictor": {
                "nodeSelector": {"any-label": "v"},
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "resources": {"limits": {"cpu": 2, "gpu.intel.com/i915": 1, "memory": "8Gi"}},
                },
                "deploymentStrategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            }
        },
    }
    assert crd_problems(doc, schemas_dir / INFERENCESERVICE_CRD) == []
    doc["spec"]["predictor"]["model"]["resources"]["limits"]["cpu"] = "two"
    assert crd_problems(doc, schemas_dir / INFERENCESERVICE_CRD) == [
        "spec.predictor.model.resources.limits.cpu: 'two' does not match "
        "'^(\\\\+|-)?(([0-9]+(\\\\.[0-9]*)?)|(\\\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
        "([eE](\\\\+|-)?(([0-9]+(\\\\.[0-9]*)?)|(\\\\.[0-9]+))))?$'"
    ]
