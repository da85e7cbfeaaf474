"""The serving catalog: the RayService llmw renders and the Ray Serve applications it runs.

A data file, like the GPU inventory: the shipped ``components/rollout/data/serving.yaml``, or the
one ``LLMW_SERVING_CATALOG`` names. Unknown fields are errors; a bad file raises CatalogError
naming the file and the field. Placement is not here: place() decides it from the inventory.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from components.data_file import load_yaml_model

_DNS_LABEL = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
_QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|[KMGTPE]i?)?$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Strict):
    """A container's CPU and memory requests and limits (Kubernetes quantities)."""

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quantities(self) -> Resources:
        for kind, values in (("requests", self.requests), ("limits", self.limits)):
            for key, value in values.items():
                if key not in ("cpu", "memory") or not re.match(_QUANTITY, value):
                    raise ValueError(f"{kind}.{key}: {value!r} is not a cpu or memory quantity")
        return self


class RayServiceSettings(_Strict):
    """The RayService itself: its name, Ray version, head, and the workers' resources."""

    name: str = Field(pattern=_DNS_LABEL)
    namespace: str = Field(pattern=_DNS_LABEL)
    ray_version: str = Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    serve_port: int = Field(8000, ge=1, le=65535)
    head_framework: str = Field(min_length=1)
    head_resources: Resources
    default_image_framework: str = Field(min_length=1)
    worker_resources: Resources
    worker_resources_by_node: dict[str, Resources] = Field(default_factory=dict)


class ServeApp(_Strict):
    """One Ray Serve application of the RayService."""

    name: str = Field(pattern=_DNS_LABEL)
    route_prefix: str = Field(pattern=r"^/[A-Za-z0-9._/-]*$")
    import_path: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    deployment: str = Field(pattern=r"^[A-Za-z_][\w-]*$")
    framework: str = Field(min_length=1)
    image_framework: str = Field(min_length=1)
    gpu_fraction: float = Field(gt=0, le=1)
    model: str = Field(min_length=1)
    kserve_model_format: str = Field("huggingface", min_length=1)


class ServingCatalog(_Strict):
    """The RayService settings and its applications, each name and route prefix once."""

    rayservice: RayServiceSettings
    apps: list[ServeApp] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ServingCatalog:
        for field in ("name", "route_prefix"):
            values = [getattr(app, field) for app in self.apps]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"apps: {field} listed twice: {', '.join(twice)}")
        return self

    def app(self, name: str) -> ServeApp:
        """The application called ``name``, or UnknownAppError listing the known ones."""
        for app in self.apps:
            if app.name == name:
                return app
        raise UnknownAppError(
            f"unknown app {name!r}: the RayService serves {', '.join(self.names())}"
        )

    def names(self) -> list[str]:
        return [app.name for app in self.apps]


class CatalogError(ValueError):
    """The serving catalog file is missing or invalid; the message names the file and field."""


class UnknownAppError(ValueError):
    """No application of that name."""


def default_catalog_path() -> Path:
    """The shipped catalog, ``components/rollout/data/serving.yaml``."""
    return Path(str(files("components.rollout").joinpath("data/serving.yaml")))


def load_catalog(path: Path | None = None) -> ServingCatalog:
    """The catalog at ``path``, or the shipped one (read once) when ``path`` is None."""
    return _load_default() if path is None else _load(Path(path))


@lru_cache(maxsize=1)
def _load_default() -> ServingCatalog:
    return _load(default_catalog_path())


def _load(path: Path) -> ServingCatalog:
    return load_yaml_model(path, ServingCatalog, "serving catalog", CatalogError)
