"""GPU placement: from what a step needs to where and how it runs (node, resources, env, image).

KFP and Hera both take their GPU settings from ``place``; nothing else names a node or resource.
Kubernetes extended resources are whole devices, so a fraction of a GPU is recorded in the
placement (Ray Serve and co-location enforce it) while the request is one device.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from components.inventory import ClusterInventory, Node, Vendor, load_inventory


class PlacementError(ValueError):
    """The request cannot be placed on this cluster; the message says why."""


class GpuNeed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str = Field(description="vllm, torch, transformers, sentence-transformers, ...")
    gpu: bool = True
    min_memory_gb: float = Field(0, ge=0)
    gpu_fraction: float = Field(1.0, gt=0, le=1)
    vendor: Vendor | None = None
    node: str | None = None
    architecture: str | None = None


class Placement(BaseModel):
    model_config = ConfigDict(frozen=True)

    node: str | None
    vendor: Vendor | Literal["cpu"]
    node_selector: dict[str, str] = Field(default_factory=dict)
    resource: str | None = None  # e.g. amd.com/gpu
    count: int = 0
    gpu_fraction: float = 0.0
    accelerator: str | None = None  # the GPU model, e.g. "AMD Radeon 680M"
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    image: str


def place(need: GpuNeed, inventory: ClusterInventory | None = None) -> Placement:
    """Where a step with this need runs, or PlacementError naming why it can't."""
    inventory = inventory or load_inventory()
    if not need.gpu:
        return Placement(node=None, vendor="cpu", image=_image(inventory, need.framework, "cpu"))
    candidates = _candidates(need, inventory)
    default = inventory.default_nodes.get(need.framework)
    node = min(
        candidates,
        key=lambda n: (n.name != default, n.gpu.memory_gb if n.gpu else 0, n.name),
    )
    gpu = node.gpu
    assert gpu is not None
    return Placement(
        node=node.name,
        vendor=gpu.vendor,
        node_selector={"kubernetes.io/hostname": node.name},
        resource=gpu.resource,
        count=1,
        gpu_fraction=need.gpu_fraction,
        accelerator=gpu.model,
        tolerations=[
            {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect}
            for t in node.taints
        ],
        env=dict(gpu.env),
        image=_image(inventory, need.framework, gpu.stack),
    )


def _candidates(need: GpuNeed, inventory: ClusterInventory) -> list[Node]:
    nodes = inventory.gpu_nodes()
    if need.node is not None:
        pinned = inventory.node(need.node)
        if pinned is None:
            known = ", ".join(n.name for n in inventory.nodes)
            raise PlacementError(f"no node named {need.node!r} (nodes: {known})")
        if pinned.gpu is None or pinned.role != "worker":
            raise PlacementError(f"node {need.node!r} has no GPU for {need.framework}")
        nodes = [pinned]
    if need.vendor is not None:
        vendors = sorted({n.gpu.vendor for n in inventory.gpu_nodes() if n.gpu})
        nodes = [n for n in nodes if n.gpu and n.gpu.vendor == need.vendor]
        if not nodes:
            raise PlacementError(
                f"the cluster has no GPU from vendor {need.vendor!r}"
                + ("" if need.node is None else f" on {need.node}")
                + f" (vendors: {', '.join(vendors)})"
            )
    if need.architecture is not None:
        nodes = [n for n in nodes if n.gpu and n.gpu.architecture == need.architecture]
        if not nodes:
            raise PlacementError(f"no GPU of architecture {need.architecture!r}")
    refusals: list[str] = []
    fitting: list[Node] = []
    for node in nodes:
        gpu = node.gpu
        assert gpu is not None
        if need.framework in gpu.unsupported:
            refusals.append(
                f"{node.name}'s {gpu.model} ({gpu.architecture}): {gpu.unsupported[need.framework]}"
            )
        elif need.framework not in gpu.frameworks:
            refusals.append(f"{node.name}'s {gpu.model} does not run {need.framework}")
        elif gpu.memory_gb < need.min_memory_gb:
            refusals.append(f"{node.name}'s {gpu.model} has {gpu.memory_gb:g} GB")
        else:
            fitting.append(node)
    if fitting:
        return fitting
    if need.min_memory_gb and all("GB" in r for r in refusals):
        largest = max(nodes, key=lambda n: n.gpu.memory_gb if n.gpu else 0)
        assert largest.gpu is not None
        raise PlacementError(
            f"no GPU has {need.min_memory_gb:g} GB for {need.framework}: the largest candidate is "
            f"{largest.name}'s {largest.gpu.model} with {largest.gpu.memory_gb:g} GB"
        )
    raise PlacementError(f"cannot place {need.framework}: " + "; ".join(refusals))


def _image(inventory: ClusterInventory, framework: str, stack: str) -> str:
    images = inventory.images.get(framework) or inventory.images.get("torch", {})
    image = images.get(stack)
    if image is None:
        raise PlacementError(f"the inventory has no {stack} image for {framework}")
    return image
