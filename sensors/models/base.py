"""What every model shares: camelCase names on the wire, unknown fields refused, and the two
Kubernetes objects every document uses (metadata, a Secret's key)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

API_VERSION = "argoproj.io/v1alpha1"


class WireModel(BaseModel):
    """A model whose ``dump()`` is the JSON the controller reads: camelCase, no unset fields."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def dump(self) -> dict[str, Any]:
        data: dict[str, Any] = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        return data


class ObjectMeta(WireModel):
    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class SecretKeySelector(WireModel):
    """One key of a Kubernetes Secret (the controller mounts it; never a literal value)."""

    name: str
    key: str
