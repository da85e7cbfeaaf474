"""The cluster's KubeRay RayService (ray.io/v1), rendered by the project and validated strictly.

One RayService runs every Ray Serve application of the serving catalog. Its RayCluster has a CPU
head (no replicas: ``num-cpus`` 0) and one worker group per GPU node of the inventory, each with
that node's whole GPU (node selector, tolerations, the vendor's device-plugin resource, the GPU's
environment) and a custom Ray resource only that group advertises (``gpu-node-<node>``). An
application's deployment asks for its ``num_gpus`` share and that resource, so it lands on the
node ``place()`` chose, and moving it to another GPU node changes ``serveConfigV2`` alone.

``upgradeStrategy.type`` is ``None``: a changed ``rayClusterConfig`` never makes KubeRay start a
second RayCluster (the NewCluster upgrade), which would need a second copy of every GPU and could
never schedule here. The rollout path is ``serveConfigV2``, which KubeRay applies in place
(components/rollout/cluster_change.py refuses everything else).

The output depends only on the code, the settings, the inventory and the catalog: the same inputs
give the same bytes. Every document is checked against the pinned KubeRay v1.5.1 CRD before
anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from components.cluster.inventory import ClusterInventory, Node, load_inventory
from components.cluster.placement import Placement
from components.orchestration.pod_security import (
    container_security_context,
    pod_security_context,
)
from components.orchestration.rendered_files import write_rendered
from components.rollout.application import ModelRef, app_entry, check_share, place_app
from components.rollout.catalog import Resources, ServingCatalog, load_catalog
from components.rollout.crd import RAYSERVICE_CRD, assert_valid_crd, crd_path
from components.rollout.serve_config import (
    check_serve_config,
    dump_serve_config,
    node_resource,
    parse_serve_config,
)
from components.rollout.yaml_text import dump_yaml
from components.settings import S3_SECRET_KEYS, Settings, get_settings

SUFFIX = ".rayservice.yaml"
API_VERSION = "ray.io/v1"
HEAD_PORTS = (("gcs-server", 6379), ("dashboard", 8265), ("client", 10001), ("serve", 8000))


def initial_placements(
    catalog: ServingCatalog, inventory: ClusterInventory
) -> dict[str, Placement]:
    """Where each application runs before any rollout: its framework's place, its GPU share."""
    placements: dict[str, Placement] = {}
    config: dict[str, Any] = {"applications": []}
    for app in catalog.apps:
        placement = place_app(app, 0.0, inventory)
        check_share(config, app, placement, inventory)
        config["applications"].append(app_entry(app, ModelRef(app.model), placement))
        placements[app.name] = placement
    return placements


def serve_config(catalog: ServingCatalog, placements: dict[str, Placement]) -> dict[str, Any]:
    """The whole Ray Serve config: every application with its first model."""
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": "0.0.0.0", "port": catalog.rayservice.serve_port},
        "applications": [
            app_entry(app, ModelRef(app.model), placements[app.name]) for app in catalog.apps
        ],
    }


def _resources(resources: Resources, extra: dict[str, int] | None = None) -> dict[str, Any]:
    extra = extra or {}
    return {
        "requests": {**resources.requests, **extra},
        "limits": {**resources.limits, **extra},
    }


def _secret_env(settings: Settings) -> list[dict[str, Any]]:
    """The model store's credentials, from the Kubernetes Secret settings name: never values."""
    ref = settings.s3_credentials_secret
    return [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": ref, "key": key}}}
        for key in S3_SECRET_KEYS
    ]


def _pod_security() -> dict[str, Any]:
    """A Ray pod's security: the images' non-root user; no service account token (Ray talks to
    no Kubernetes API: KubeRay does, with its own account)."""
    return {"automountServiceAccountToken": False, "securityContext": pod_security_context()}


def head_group(catalog: ServingCatalog, inventory: ClusterInventory) -> dict[str, Any]:
    """The head: the GCS, the dashboard KubeRay talks to, the Serve controller and proxy."""
    rayservice = catalog.rayservice
    image = inventory.images[rayservice.head_framework]["cpu"]
    return {
        "rayStartParams": {"dashboard-host": "0.0.0.0", "num-cpus": "0"},
        "template": {
            "spec": {
                **_pod_security(),
                "containers": [
                    {
                        "name": "ray-head",
                        "image": image,
                        "ports": [{"name": n, "containerPort": p} for n, p in HEAD_PORTS],
                        "resources": _resources(rayservice.head_resources),
                        "securityContext": container_security_context(),
                    }
                ],
            }
        },
    }


def _node_image(
    node: Node,
    catalog: ServingCatalog,
    placements: dict[str, Placement],
    inventory: ClusterInventory,
) -> str:
    images = {p.image for p in placements.values() if p.node == node.name}
    if len(images) > 1:
        apps = ", ".join(sorted(n for n, p in placements.items() if p.node == node.name))
        raise ValueError(
            f"the applications on {node.name} ({apps}) need different images "
            f"({', '.join(sorted(images))}): one worker group runs one image"
        )
    if images:
        return images.pop()
    assert node.gpu is not None
    framework = catalog.rayservice.default_image_framework
    image = inventory.images.get(framework, {}).get(node.gpu.stack)
    if image is None:
        raise ValueError(f"the inventory has no {node.gpu.stack} image for {framework}")
    return image


def worker_group(
    node: Node, image: str, catalog: ServingCatalog, settings: Settings
) -> dict[str, Any]:
    """``node``'s worker group: one pod holding its whole GPU, advertising its node resource."""
    gpu = node.gpu
    assert gpu is not None
    rayservice = catalog.rayservice
    resources = rayservice.worker_resources_by_node.get(node.name, rayservice.worker_resources)
    env = [{"name": k, "value": v} for k, v in sorted(gpu.env.items())] + _secret_env(settings)
    pod: dict[str, Any] = {
        **_pod_security(),
        "nodeSelector": {"kubernetes.io/hostname": node.hostname},
    }
    if node.taints:
        pod["tolerations"] = [t.toleration() for t in node.taints]
    pod["containers"] = [
        {
            "name": "ray-worker",
            "image": image,
            "env": env,
            "resources": _resources(resources, {gpu.resource: gpu.count}),
            "securityContext": container_security_context(),
        }
    ]
    return {
        "groupName": f"gpu-{node.name}",
        "replicas": 1,
        "minReplicas": 1,
        "maxReplicas": 1,
        "rayStartParams": {
            # Ray counts the GPUs itself only for nvidia.com/gpu and amd.com/gpu; say it always.
            "num-gpus": str(gpu.count),
            # KubeRay's form: a JSON object, itself quoted, as `ray start --resources` takes it.
            "resources": json.dumps(json.dumps({node_resource(node.name): 1})),
        },
        "template": {"spec": pod},
    }


def render_rayservice(
    settings: Settings | None = None,
    catalog: ServingCatalog | None = None,
    inventory: ClusterInventory | None = None,
) -> dict[str, Any]:
    """The RayService as a plain dict (not yet validated: see ``render_text``)."""
    settings = settings or get_settings()
    catalog = catalog or load_catalog(settings.serving_catalog)
    inventory = inventory or load_inventory(settings.cluster_inventory)
    placements = initial_placements(catalog, inventory)
    config = serve_config(catalog, placements)
    check_serve_config(config)
    rayservice = catalog.rayservice
    groups = [
        worker_group(node, _node_image(node, catalog, placements, inventory), catalog, settings)
        for node in inventory.gpu_nodes()
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "RayService",
        "metadata": {
            "name": rayservice.name,
            "namespace": rayservice.namespace,
            "labels": {
                "app.kubernetes.io/name": rayservice.name,
                "app.kubernetes.io/part-of": "llm-workflows",
                "app.kubernetes.io/managed-by": "llmw",
            },
        },
        "spec": {
            "upgradeStrategy": {"type": "None"},
            "serveConfigV2": dump_serve_config(config),
            "rayClusterConfig": {
                "rayVersion": rayservice.ray_version,
                "headGroupSpec": head_group(catalog, inventory),
                "workerGroupSpecs": groups,
            },
        },
    }


def to_yaml(document: dict[str, Any]) -> str:
    """A RayService's YAML: its key order, block style, ``serveConfigV2`` as a literal block."""
    return dump_yaml(document)


def validate(document: dict[str, Any], settings: Settings, schemas_dir: Path | None = None) -> None:
    """SchemaViolationError unless ``document`` passes the pinned KubeRay CRD strictly, and
    ServeConfigError unless its ``serveConfigV2`` passes the Ray Serve config rules."""
    assert_valid_crd(document, crd_path(schemas_dir or settings.schemas_dir, RAYSERVICE_CRD))
    check_serve_config(parse_serve_config(document["spec"]["serveConfigV2"]))


def render_text(settings: Settings | None = None, schemas_dir: Path | None = None) -> str:
    """The validated YAML of the cluster's RayService."""
    settings = settings or get_settings()
    document = render_rayservice(settings)
    validate(document, settings, schemas_dir)
    return to_yaml(document)


def render_all(
    out_dir: Path, settings: Settings | None = None, schemas_dir: Path | None = None
) -> list[Path]:
    """Write ``<out_dir>/<name>.rayservice.yaml``; everything is validated before anything is
    written (the contract of ``workflows.render.render_all``)."""
    settings = settings or get_settings()
    catalog = load_catalog(settings.serving_catalog)
    texts = {catalog.rayservice.name: render_text(settings, schemas_dir)}
    return write_rendered(texts, out_dir, SUFFIX)
