"""The cluster's GPU inventory: a YAML data file (the shipped default, or the user's), validated.

The shipped file is ``components/cluster/data/cluster.yaml``; ``LLMW_CLUSTER_INVENTORY`` (the
settings field ``cluster_inventory``) names a replacement. Every model forbids unknown fields,
and a bad file raises ``InventoryError`` naming the file and the field (nodes by name, not by
index).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.data_file import load_yaml_model
from components.images import with_version

Vendor = Literal["nvidia", "amd", "intel"]
Stack = Literal["cuda", "rocm", "xpu"]
ImageStack = Literal["cuda", "rocm", "xpu", "cpu"]
EmbeddingBackend = Literal["auto", "torch", "onnx", "openvino"]
VENDOR_NAMES: dict[str, str] = {"nvidia": "NVIDIA", "amd": "AMD", "intel": "Intel"}
_DNS_LABEL = r"^[a-z0-9]([a-z0-9.\-]*[a-z0-9])?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Taint(_Strict):
    """A Kubernetes node taint; placement turns it into the matching toleration."""

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]

    def toleration(self) -> dict[str, str]:
        """The toleration (Kubernetes shape) that lets a pod onto a node with this taint."""
        if not self.value:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


class Gpu(_Strict):
    """A node's GPU(s): what it is, how Kubernetes exposes it, and what runs on it."""

    vendor: Vendor
    model: str = Field(min_length=1)
    accelerator_type: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    architecture: str = Field(min_length=1)  # gfx1151, gfx1035, sm_75, xe-lpg
    family: str | None = None  # turing, rdna3.5, rdna2, xe: also matches GpuNeed.architecture
    memory_gb: float = Field(gt=0)
    unified_memory: bool = False
    stack: Stack
    resource: str = Field(pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-]+$")  # the device plugin's resource
    count: int = Field(1, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    frameworks: list[str]
    unsupported: dict[str, str] = Field(default_factory=dict)  # framework -> why not

    @model_validator(mode="after")
    def _frameworks_disjoint(self) -> Gpu:
        both = sorted(set(self.frameworks) & set(self.unsupported))
        if both:
            raise ValueError(f"frameworks and unsupported both list {', '.join(both)}")
        return self

    @property
    def label_value(self) -> str:
        """A label-safe name for this GPU (``accelerator_type``, else the model with dashes)."""
        return self.accelerator_type or "-".join(self.model.split())

    def describe(self, node: str) -> str:
        """``drizzt's AMD Radeon 680M (gfx1035)``: how refusals name a GPU."""
        return f"{node}'s {self.model} ({self.architecture})"


class Node(_Strict):
    """A Kubernetes node; only workers with a ``gpu`` take GPU work."""

    name: str = Field(pattern=_DNS_LABEL)
    role: Literal["control-plane", "worker"]
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    dedicated_to: list[str] = Field(default_factory=list)  # frameworks placed here unpinned
    gpu: Gpu | None = None

    @model_validator(mode="after")
    def _gpu_on_workers_only(self) -> Node:
        if self.role == "control-plane" and self.gpu is not None:
            raise ValueError(
                "a control-plane node takes no GPU work: drop its gpu or make it a worker"
            )
        return self

    @property
    def hostname(self) -> str:
        """The ``kubernetes.io/hostname`` label value (the node name unless labels say else)."""
        return self.labels.get("kubernetes.io/hostname", self.name)


class ClusterInventory(_Strict):
    """Nodes, images per framework and vendor stack, and each framework's default node."""

    images: dict[str, dict[ImageStack, str]]
    default_nodes: dict[str, str] = Field(default_factory=dict)
    # The embedding runtime (LLMW_EMBEDDING_BACKEND) that runs best on each vendor stack.
    embedding_backends: dict[ImageStack, EmbeddingBackend] = Field(default_factory=dict)
    nodes: list[Node] = Field(min_length=1)

    @field_validator("images")
    @classmethod
    def _versioned(
        cls, images: dict[str, dict[ImageStack, str]]
    ) -> dict[str, dict[ImageStack, str]]:
        """``{version}`` in an image stands for the project's version (components/images.py)."""
        return {
            framework: {stack: with_version(image) for stack, image in by_stack.items()}
            for framework, by_stack in images.items()
        }

    @model_validator(mode="after")
    def _consistent(self) -> ClusterInventory:
        names = [n.name for n in self.nodes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"nodes listed twice: {', '.join(duplicates)}")
        for framework, name in self.default_nodes.items():
            node = self.node(name)
            if node is None:
                raise ValueError(f"default_nodes.{framework} names unknown node {name!r}")
            if node not in self.gpu_nodes():
                raise ValueError(f"default_nodes.{framework} names {name!r}, which has no GPU")
        for node in self.gpu_nodes():
            assert node.gpu is not None
            for framework in node.gpu.frameworks:
                if node.gpu.stack not in self.images.get(framework, {}):
                    raise ValueError(
                        f"nodes[{node.name}].gpu.frameworks lists {framework}, but "
                        f"images.{framework} has no {node.gpu.stack} image"
                    )
        return self

    def node(self, name: str) -> Node | None:
        """The node called ``name``, if any."""
        return next((n for n in self.nodes if n.name == name), None)

    def gpu_nodes(self) -> list[Node]:
        """Worker nodes with a GPU: the only places GPU work goes."""
        return [n for n in self.nodes if n.gpu is not None and n.role == "worker"]

    def gpus_of_kind(self, model: str) -> int:
        """How many GPUs of this model exist: a rollout needing a second copy can't schedule."""
        return sum(n.gpu.count for n in self.gpu_nodes() if n.gpu and n.gpu.model == model)


class InventoryError(ValueError):
    """The inventory file is missing or invalid; the message names the file and the field."""


def default_inventory_path() -> Path:
    """The shipped inventory, ``components/cluster/data/cluster.yaml``."""
    return Path(str(files("components.cluster").joinpath("data/cluster.yaml")))


def load_inventory(path: Path | None = None) -> ClusterInventory:
    """The inventory at ``path``, or the shipped one (read once) when ``path`` is None."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> ClusterInventory:
    return _load(default_inventory_path())


def _load(path: Path) -> ClusterInventory:
    return load_yaml_model(path, ClusterInventory, "cluster inventory", InventoryError, _where)


def _where(loc: Sequence[Any], data: Any) -> str:
    """A field path such as ``nodes[drizzt].gpu.memory_gb`` (node names instead of indexes)."""
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int) and parts:
            name = _node_name(data, part) if loc[:i] == ("nodes",) else None
            parts[-1] += f"[{name or part}]"
        else:
            parts.append(str(part))
    return ".".join(parts) or "(top level)"


def _node_name(data: Any, index: int) -> str | None:
    try:
        name = data["nodes"][index]["name"]
    except (KeyError, IndexError, TypeError):
        return None
    return name if isinstance(name, str) else None
