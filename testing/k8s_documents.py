"""Every Kubernetes document the project renders, written into one folder for checkov
(``make checkov``): the Argo WorkflowTemplates and their RBAC, the bridge's manifests, the Argo
Events EventSources, Sensors and their RBAC, the RayService, and the InferenceServices a KServe
rollout renders (each catalog app that KServe serves, in both deployment modes, alone and with a
canary), each validated as ``llmw compile`` validates them.

checkov's Kubernetes policies read Pods and workloads, not custom resources: the pods that Argo
creates from each WorkflowTemplate step (the step's container with the workflow's account,
security context, placement and deadline) and the RayService's head and worker pods are also
written under ``pods/`` as the Pod documents they become, so the policies see them.

``python -m testing.k8s_documents OUT`` prints the files written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bridge.deploy import render_manifests, write_manifests
from components.cluster.inventory import load_inventory
from components.rollout import kserve
from components.rollout.application import ModelRef, RolloutRefused, place_app
from components.rollout.catalog import load_catalog
from components.rollout.rayservice import render_all as render_rayservice
from components.rollout.yaml_text import dump_yaml
from components.settings import Settings
from sensors.render import render_all as render_sensors
from workflows.render import render_all as render_workflows

# A model version as a rollout stages it, and the GPU memory it is placed with.
STAGED = ModelRef("s3://models/checkov/v2/", "v2", "ab" * 32)
MEMORY_GB = 1.5
CANARY_PERCENT = 10


def write_inferenceservices(out: Path, settings: Settings) -> list[Path]:
    """``<out>/serving/<app>.<mode>[-canary].inferenceservice.yaml``, validated."""
    catalog = load_catalog(settings.serving_catalog)
    inventory = load_inventory(settings.cluster_inventory)
    paths = []
    for app in catalog.apps:
        try:
            placement = place_app(app, MEMORY_GB, inventory)
        except RolloutRefused:
            continue  # an app with no node to place it on renders no InferenceService
        stable = ModelRef(app.model)
        for mode in ("Serverless", "RawDeployment"):
            for canary in (None, CANARY_PERCENT):
                document = kserve.render_inferenceservice(
                    app, STAGED, placement, catalog, settings, mode, canary, stable
                )
                kserve.validate(document, settings)
                suffix = f"{mode.lower()}{'-canary' if canary else ''}"
                path = out / "serving" / f"{app.name}.{suffix}.inferenceservice.yaml"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(dump_yaml(document), encoding="utf-8")
                paths.append(path)
    return paths


def _pod(name: str, namespace: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def workflow_pods(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The pod Argo creates for each script or container template (its main container)."""
    spec = document["spec"]
    for template in spec["templates"]:
        kind = next((k for k in ("script", "container") if k in template), None)
        if kind is None:
            continue
        container = {k: v for k, v in template[kind].items() if k != "source"}
        pod: dict[str, Any] = {
            "serviceAccountName": spec.get("serviceAccountName"),
            "securityContext": template.get("securityContext", spec.get("securityContext")),
            "containers": [{"name": "main", **container}],
        }
        for key in ("nodeSelector", "tolerations", "activeDeadlineSeconds"):
            if key in template:
                pod[key] = template[key]
        pod = {k: v for k, v in pod.items() if v is not None}
        name = f"{document['metadata']['name']}-{template['name']}"
        yield _pod(name, document["metadata"]["namespace"], pod)


def rayservice_pods(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The RayService's head and worker pods, from their group templates."""
    cluster = document["spec"]["rayClusterConfig"]
    groups = [("head", cluster["headGroupSpec"])]
    groups += [(group["groupName"], group) for group in cluster.get("workerGroupSpecs", [])]
    for name, group in groups:
        spec = group["template"]["spec"]
        yield _pod(
            f"{document['metadata']['name']}-{name}", document["metadata"]["namespace"], spec
        )


def write_pods(out: Path, rendered: list[Path]) -> list[Path]:
    """``<out>/pods/<source>.pod.yaml``: the Pods of the rendered WorkflowTemplates and
    RayService, several documents per file."""
    paths = []
    for path in rendered:
        if path.name.endswith(".argo.yaml"):
            pods = list(workflow_pods(yaml.safe_load(path.read_text())))
        elif path.name.endswith(".rayservice.yaml"):
            pods = list(rayservice_pods(yaml.safe_load(path.read_text())))
        else:
            continue
        target = out / "pods" / f"{path.name.rsplit('.', 2)[0]}.pod.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(yaml.safe_dump_all(pods, sort_keys=False), encoding="utf-8")
        paths.append(target)
    return paths


def write_all(out: Path, settings: Settings) -> list[Path]:
    """Write every document under ``out``; the files, in order."""
    render_manifests(settings)  # refuses bad settings first, as llmw compile does
    paths = render_workflows(out / "workflows", settings, settings.schemas_dir)
    paths += write_manifests(out, settings)
    paths += render_sensors(out, settings, settings.schemas_dir)
    paths += render_rayservice(out / "serving", settings, settings.schemas_dir)
    paths += write_inferenceservices(out, settings)
    return paths + write_pods(out, paths)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m testing.k8s_documents OUT", file=sys.stderr)
        return 2
    for path in write_all(Path(argv[0]), Settings()):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
