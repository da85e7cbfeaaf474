"""GPU placement: from what a step needs to where and how it runs (node, resources, env, image).

KFP and Hera both take their GPU settings from ``place``; nothing else names a node or resource.
Kubernetes extended resources (``nvidia.com/gpu``, ``amd.com/gpu``, ``gpu.intel.com/i915``) are
whole devices, so a placement always requests an integer count (one GPU); a fraction of a GPU is
kept in ``Placement.gpu_fraction`` and enforced by co-location (Ray Serve's ``num_gpus``, vLLM's
memory utilisation), not by the scheduler. Both AMD nodes expose ``amd.com/gpu``, so every GPU
placement also carries a node selector (``kubernetes.io/hostname``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.cluster.inventory import (
    VENDOR_NAMES,
    ClusterInventory,
    ImageStack,
    Node,
    Vendor,
    load_inventory,
)
from components.settings import get_settings

# The frameworks whose steps embed with components.ingest.embedders (and so take a backend).
EMBEDDING_FRAMEWORKS = ("sentence-transformers",)


class PlacementError(ValueError):
    """The request cannot be placed on this cluster; the message says why."""


class GpuNeed(BaseModel):
    """What a step needs: a framework, and optionally memory, a vendor, a node or an arch."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    framework: str = Field(
        min_length=1, description="vllm, torch, transformers, sentence-transformers, reranker, ..."
    )
    gpu: bool = True  # False: a CPU placement (no resource, the framework's cpu image)
    min_memory_gb: float = Field(0, ge=0)
    gpu_fraction: float = Field(1.0, gt=0, le=1)
    vendor: str | None = Field(None, description="nvidia, amd or intel")
    node: str | None = None  # pin a node by name
    architecture: str | None = None  # gfx1151, sm_75, ... or a family: turing, rdna2, xe
    # Whose image the step runs, when not the framework's own: a batch step that drives vLLM
    # needs this project installed over vLLM, not the upstream server image.
    image_framework: str | None = None

    @field_validator("vendor", "architecture")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None

    @model_validator(mode="after")
    def _cpu_asks_nothing_of_a_gpu(self) -> GpuNeed:
        if not self.gpu:
            asked = [f for f in ("vendor", "architecture", "min_memory_gb") if getattr(self, f)]
            if asked:
                raise ValueError(f"gpu=False asks for no GPU, yet sets {', '.join(asked)}")
        return self


class Placement(BaseModel):
    """Where and how a step runs: everything a KFP task or an Argo template needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    node: str | None  # None: anywhere the scheduler likes (a CPU step)
    vendor: Vendor | Literal["cpu"]
    node_selector: dict[str, str] = Field(default_factory=dict)
    resource: str | None = None  # the device plugin's extended resource, e.g. amd.com/gpu
    count: int = Field(0, ge=0)  # whole devices: fractions can't be requested from Kubernetes
    gpu_fraction: float = Field(0.0, ge=0, le=1)  # the share used; enforced by co-location/Ray
    accelerator: str | None = None  # the GPU model, e.g. "AMD Radeon 680M"
    accelerator_type: str | None = None  # label-safe, e.g. "AMD-Radeon-680M" (Ray, node labels)
    architecture: str | None = None  # gfx1035, sm_75, ...
    tolerations: list[dict[str, str]] = Field(default_factory=list)  # Kubernetes shape
    env: dict[str, str] = Field(default_factory=dict)
    image: str
    # The embedding runtime for this stack (sentence-transformers steps; also in env).
    embedding_backend: str | None = None

    def resource_limits(self) -> dict[str, int]:
        """The container's extended-resource limits, e.g. ``{"amd.com/gpu": 1}``; {} for CPU."""
        return {self.resource: self.count} if self.resource and self.count else {}


def place(need: GpuNeed, inventory: ClusterInventory | None = None) -> Placement:
    """Where a step with this need runs, or PlacementError naming why it can't.

    Without ``inventory``, the one the settings name (``LLMW_CLUSTER_INVENTORY``, else the
    shipped file). Among several GPUs that fit, the choice is deterministic: the inventory's
    default node for the framework, then the least memory that fits, then the node name.
    """
    if inventory is None:
        inventory = load_inventory(get_settings().cluster_inventory)
    if not need.gpu:
        return _cpu_placement(need, inventory)
    default = inventory.default_nodes.get(need.framework)
    node = min(
        _candidates(need, inventory),
        key=lambda n: (n.name != default, n.gpu.memory_gb if n.gpu else 0.0, n.name),
    )
    gpu = node.gpu
    assert gpu is not None
    backend = _embedding_backend(need, inventory, gpu.stack)
    return Placement(
        node=node.name,
        vendor=gpu.vendor,
        node_selector={"kubernetes.io/hostname": node.hostname},
        resource=gpu.resource,
        count=1,
        gpu_fraction=need.gpu_fraction,
        accelerator=gpu.model,
        accelerator_type=gpu.label_value,
        architecture=gpu.architecture,
        tolerations=[t.toleration() for t in node.taints],
        env={**gpu.env, **_backend_env(backend)},
        image=_image(inventory, need.image_framework or need.framework, gpu.stack),
        embedding_backend=backend,
    )


def _embedding_backend(need: GpuNeed, inventory: ClusterInventory, stack: ImageStack) -> str | None:
    """The inventory's embedding runtime for ``stack``, for a step that embeds."""
    if need.framework not in EMBEDDING_FRAMEWORKS:
        return None
    return inventory.embedding_backends.get(stack)


def _backend_env(backend: str | None) -> dict[str, str]:
    return {"LLMW_EMBEDDING_BACKEND": backend} if backend else {}


def gpus_like(placement: Placement, inventory: ClusterInventory) -> int:
    """How many GPUs of this placement's kind the cluster has (0 for a CPU placement).

    One, for every GPU in the shipped inventory: a rollout that needs a second copy on the same
    kind of GPU (KubeRay's default NewCluster upgrade) can never schedule.
    """
    return inventory.gpus_of_kind(placement.accelerator) if placement.accelerator else 0


def _cpu_placement(need: GpuNeed, inventory: ClusterInventory) -> Placement:
    image = _image(inventory, need.image_framework or need.framework, "cpu")
    backend = _embedding_backend(need, inventory, "cpu")
    if need.node is None:
        return Placement(
            node=None,
            vendor="cpu",
            image=image,
            env=_backend_env(backend),
            embedding_backend=backend,
        )
    node = _pinned(need, inventory)
    if node.role != "worker":
        raise PlacementError(f"node {node.name!r} is a {node.role} node: steps don't run there")
    return Placement(
        node=node.name,
        vendor="cpu",
        node_selector={"kubernetes.io/hostname": node.hostname},
        tolerations=[t.toleration() for t in node.taints],
        env=_backend_env(backend),
        image=image,
        embedding_backend=backend,
    )


def _pinned(need: GpuNeed, inventory: ClusterInventory) -> Node:
    node = inventory.node(need.node or "")
    if node is None:
        known = ", ".join(n.name for n in inventory.nodes)
        raise PlacementError(f"no node named {need.node!r} (nodes: {known})")
    return node


def _candidates(need: GpuNeed, inventory: ClusterInventory) -> list[Node]:
    """The GPU nodes that can take this need (never empty), or PlacementError saying why."""
    nodes = inventory.gpu_nodes()
    if need.node is not None:
        pinned = _pinned(need, inventory)
        if pinned not in nodes:
            role = " (a control-plane node)" if pinned.role == "control-plane" else ""
            raise PlacementError(
                f"cannot place {need.framework} on node {pinned.name!r}: it has no GPU{role}"
            )
        nodes = [pinned]
    if need.vendor is not None:
        nodes = _by_vendor(need, inventory, nodes)
    if need.architecture is not None:
        nodes = _by_architecture(need, inventory, nodes)

    supported: list[Node] = []
    refusals: list[str] = []
    for node in nodes:
        gpu = node.gpu
        assert gpu is not None
        if need.framework in gpu.frameworks:
            supported.append(node)
        else:
            reason = gpu.unsupported.get(need.framework)
            refusals.append(
                f"{need.framework} does not support {gpu.describe(node.name)}"
                + (f": {reason}" if reason else "")
            )
    if not supported:
        raise PlacementError(f"cannot place {need.framework}: " + "; ".join(refusals))

    fitting = [n for n in supported if n.gpu and n.gpu.memory_gb >= need.min_memory_gb]
    if not fitting:
        largest = max(supported, key=lambda n: n.gpu.memory_gb if n.gpu else 0.0)
        assert largest.gpu is not None
        kind = f"{VENDOR_NAMES[need.vendor]} GPU" if need.vendor else "GPU"
        raise PlacementError(
            f"no GPU has {need.min_memory_gb:g} GB for {need.framework}: the largest {kind} "
            f"that runs it is {largest.name}'s {largest.gpu.model} with "
            f"{largest.gpu.memory_gb:g} GB"
        )
    if need.node is not None:
        return fitting  # a pinned node is an explicit choice, dedicated or not
    free = [n for n in fitting if not n.dedicated_to or need.framework in n.dedicated_to]
    if not free:
        dedicated = "; ".join(
            f"{n.gpu.describe(n.name) if n.gpu else n.name} is dedicated to "
            f"{', '.join(n.dedicated_to)} (pin node={n.name!r} to share it)"
            for n in fitting
        )
        memory = f" with {need.min_memory_gb:g} GB" if need.min_memory_gb else ""
        raise PlacementError(
            f"cannot place {need.framework}: no GPU{memory} is free for it: {dedicated}"
        )
    return free


def _by_vendor(need: GpuNeed, inventory: ClusterInventory, nodes: list[Node]) -> list[Node]:
    kept = [n for n in nodes if n.gpu and n.gpu.vendor == need.vendor]
    if kept:
        return kept
    vendors = sorted({n.gpu.vendor for n in inventory.gpu_nodes() if n.gpu})
    if need.vendor not in vendors:
        raise PlacementError(
            f"the cluster has no GPU from vendor {need.vendor!r} (vendors: {', '.join(vendors)})"
        )
    node = nodes[0]  # only a pinned node can leave no GPU of a vendor the cluster has
    gpu = node.gpu
    assert gpu is not None
    raise PlacementError(
        f"node {node.name!r} has an {VENDOR_NAMES[gpu.vendor]} GPU ({gpu.model}), "
        f"not one from vendor {need.vendor!r}"
    )


def _by_architecture(need: GpuNeed, inventory: ClusterInventory, nodes: list[Node]) -> list[Node]:
    def matches(node: Node) -> bool:
        gpu = node.gpu
        return gpu is not None and need.architecture in (
            gpu.architecture.lower(),
            (gpu.family or "").lower(),
        )

    kept = [n for n in nodes if matches(n)]
    if kept:
        return kept
    archs = sorted({n.gpu.architecture for n in nodes if n.gpu})
    where = "" if len(nodes) == len(inventory.gpu_nodes()) else " among the candidates"
    raise PlacementError(
        f"no GPU of architecture {need.architecture!r}{where} (architectures: {', '.join(archs)})"
    )


def _image(inventory: ClusterInventory, framework: str, stack: ImageStack) -> str:
    image = inventory.images.get(framework, {}).get(stack)
    if image is None:
        raise PlacementError(f"the inventory has no {stack} image for {framework}")
    return image
