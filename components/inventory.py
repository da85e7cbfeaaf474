"""The cluster's GPU inventory: a YAML data file (shipped default, or the user's), validated."""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Vendor = Literal["nvidia", "amd", "intel"]
Stack = Literal["cuda", "rocm", "xpu"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Taint(_Strict):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class Gpu(_Strict):
    vendor: Vendor
    model: str
    architecture: str
    memory_gb: float = Field(gt=0)
    unified_memory: bool = False
    stack: Stack
    resource: str = Field(pattern=r"^[a-z0-9.\-]+/[a-z0-9.\-]+$")
    count: int = Field(1, ge=1)
    env: dict[str, str] = Field(default_factory=dict)
    frameworks: list[str]
    unsupported: dict[str, str] = Field(default_factory=dict)  # framework -> why not


class Node(_Strict):
    name: str
    role: Literal["control-plane", "worker"]
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    gpu: Gpu | None = None


class ClusterInventory(_Strict):
    images: dict[str, dict[str, str]]  # framework -> stack (cuda, rocm, xpu, cpu) -> image
    default_nodes: dict[str, str] = Field(default_factory=dict)
    nodes: list[Node]

    @model_validator(mode="after")
    def _consistent(self) -> ClusterInventory:
        names = [n.name for n in self.nodes]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise ValueError(f"nodes listed twice: {', '.join(sorted(duplicates))}")
        for framework, node in self.default_nodes.items():
            if node not in names:
                raise ValueError(f"default_nodes.{framework} names unknown node {node!r}")
        return self

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def gpu_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.gpu is not None and n.role == "worker"]

    def gpus_of_kind(self, model: str) -> int:
        """How many GPUs of this model exist: a rollout needing a second copy can't schedule."""
        return sum(n.gpu.count for n in self.gpu_nodes() if n.gpu and n.gpu.model == model)


class InventoryError(ValueError):
    """The inventory file is missing or invalid; the message names the file and the field."""


def _default_path() -> Path:
    return Path(str(files("components").joinpath("data/cluster.yaml")))


@lru_cache(maxsize=8)
def load_inventory(path: Path | None = None) -> ClusterInventory:
    """The inventory at ``path``, or the shipped one."""
    path = path or _default_path()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InventoryError(f"cannot read cluster inventory {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InventoryError(f"cluster inventory {path} is not valid YAML: {exc}") from exc
    try:
        return ClusterInventory.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise InventoryError(f"cluster inventory {path} is invalid: {problems}") from None
