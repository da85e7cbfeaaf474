"""One application's entry in ``serveConfigV2``: where it runs, what it serves, whether it fits.

The memory a model needs is its weights' size (from the manifest) times
``settings.rollout_memory_factor``, or what the caller states. An application takes
``gpu_fraction`` of a GPU, so the GPU it goes to must have ``memory / gpu_fraction`` GB;
``place()`` picks it from the inventory (framework and vendor support, dedicated nodes, the
framework's default node), and the applications already on that GPU must leave it the share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from components.cluster.inventory import ClusterInventory
from components.cluster.placement import GpuNeed, Placement, PlacementError, place
from components.rollout.catalog import ServeApp
from components.rollout.manifest import GB
from components.rollout.serve_config import NODE_RESOURCE_ASK, gpu_shares, node_resource


class RolloutRefused(ValueError):
    """A rollout that must not happen; ``reason`` says which rule refused it.

    Reasons: ``placement`` (no GPU fits, or the share is taken), ``new_cluster`` (KubeRay would
    start a second RayCluster), ``unknown_app``, ``version_conflict`` (the version exists with
    other bytes), ``store`` (the model store can't be used), ``source`` (nothing to stage).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ModelRef:
    """The model an application serves: where it loads it from, and which staged version."""

    uri: str  # a model-store folder, or (before a first rollout) a Hugging Face id
    version: str | None = None
    digest: str | None = None

    def args(self, app: ServeApp) -> dict[str, Any]:
        """The application builder's ``args`` (serving/ reads them)."""
        args: dict[str, Any] = {"model": self.uri, "served_model_name": app.name}
        if self.version is not None:
            args["model_version"] = self.version
        if self.digest is not None:
            args["model_digest"] = self.digest
        return args


def memory_need_gb(weights_bytes: int, factor: float) -> float:
    """The GPU memory (GB) a model whose weights take ``weights_bytes`` needs, rounded up to
    the MB."""
    return math.ceil(round(weights_bytes * factor / GB * 1000, 6)) / 1000


def place_app(
    app: ServeApp,
    memory_gb: float,
    inventory: ClusterInventory,
    gpu_fraction: float | None = None,
    node: str | None = None,
) -> Placement:
    """Where ``app`` runs with a model needing ``memory_gb``; RolloutRefused when nowhere."""
    fraction = gpu_fraction if gpu_fraction is not None else app.gpu_fraction
    whole = round(memory_gb / fraction, 3)
    need = GpuNeed(
        framework=app.framework,
        min_memory_gb=whole,
        gpu_fraction=fraction,
        node=node,
        image_framework=app.image_framework,
    )
    try:
        return place(need, inventory)
    except PlacementError as exc:
        why = f"{app.name}: {exc}"
        if memory_gb and f"{whole:g} GB" in str(exc):
            why += (
                f" (the model needs {memory_gb:g} GB, and {app.name} takes {fraction:g} of a GPU)"
            )
        raise RolloutRefused("placement", why) from None


def check_share(
    config: dict[str, Any], app: ServeApp, placement: Placement, inventory: ClusterInventory
) -> None:
    """RolloutRefused when the applications already on the node leave ``app`` too little GPU."""
    assert placement.node is not None
    others = gpu_shares(config, skip=app.name).get(placement.node, [])
    node = inventory.node(placement.node)
    gpus = node.gpu.count if node is not None and node.gpu is not None else 1
    total = round(sum(share for _, share in others) + placement.gpu_fraction, 6)
    if total > gpus:
        held = " + ".join(f"{name} ({share:g})" for name, share in others)
        raise RolloutRefused(
            "placement",
            f"{app.name} would take {placement.gpu_fraction:g} of {placement.node}'s "
            f"{placement.accelerator}, where {held} already hold a share: that makes {total:g} "
            f"of {gpus} GPU",
        )


def app_entry(app: ServeApp, model: ModelRef, placement: Placement) -> dict[str, Any]:
    """The application's ``serveConfigV2`` entry: route, builder, model, env, GPU share, node."""
    assert placement.node is not None
    entry: dict[str, Any] = {
        "name": app.name,
        "route_prefix": app.route_prefix,
        "import_path": app.import_path,
    }
    if placement.env:
        entry["runtime_env"] = {"env_vars": dict(sorted(placement.env.items()))}
    entry["args"] = model.args(app)
    entry["deployments"] = [
        {
            "name": app.deployment,
            "num_replicas": 1,
            "ray_actor_options": {
                "num_cpus": 1,
                "num_gpus": placement.gpu_fraction,
                "resources": {node_resource(placement.node): NODE_RESOURCE_ASK},
            },
        }
    ]
    return entry
