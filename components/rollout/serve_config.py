"""The Ray Serve config in a RayService's ``serveConfigV2``: build, check, parse, dump.

What KubeRay sends to the Ray dashboard (``PUT /api/serve/applications/``) and Ray validates
with ``ray.serve.schema.ServeDeploySchema``. ``check_serve_config`` runs that schema, after this
project's stricter rules, which Ray's leaves out (unknown fields refused, application names and
route prefixes each once, ``import_path`` as ``module:attribute``, ``num_gpus`` and resources not
negative). Each application's GPU deployment is placed by ``ray_actor_options``: its ``num_gpus``
share and a custom resource that only its node's worker group advertises (``node_resource``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from components.rollout.yaml_text import dump_yaml, load_yaml

# The custom resource a node's worker group advertises (capacity 1), and what an application's
# deployment asks of it: pinning, not sharing (num_gpus does the sharing).
NODE_RESOURCE_PREFIX = "gpu-node-"
NODE_RESOURCE_ASK = 0.01


def node_resource(node: str) -> str:
    """The Ray resource only ``node``'s worker group has: ``gpu-node-khelben``."""
    return f"{NODE_RESOURCE_PREFIX}{node}"


def node_of(resources: dict[str, Any]) -> str | None:
    """The node a deployment's ``ray_actor_options.resources`` pins it to, if any."""
    nodes = [
        key[len(NODE_RESOURCE_PREFIX) :]
        for key in resources
        if key.startswith(NODE_RESOURCE_PREFIX)
    ]
    return nodes[0] if len(nodes) == 1 else None


class _RayStrict(BaseModel):
    # Ray's serve schemas forbid unknown fields too.
    model_config = ConfigDict(extra="forbid")


class RayActorOptions(_RayStrict):
    runtime_env: dict[str, Any] | None = None
    num_cpus: float | None = Field(None, ge=0)
    num_gpus: float | None = Field(None, ge=0)
    memory: float | None = Field(None, ge=0)
    resources: dict[str, float] | None = None
    accelerator_type: str | None = None

    @field_validator("resources")
    @classmethod
    def _not_negative(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key, amount in (value or {}).items():
            if amount < 0:
                raise ValueError(f"resources.{key} is negative")
        return value


class Deployment(_RayStrict):
    name: str = Field(min_length=1)
    num_replicas: int | Literal["auto"] | None = None
    max_ongoing_requests: int | None = Field(None, gt=0)
    max_queued_requests: int | None = None
    user_config: dict[str, Any] | None = None
    autoscaling_config: dict[str, Any] | None = None
    graceful_shutdown_wait_loop_s: float | None = None
    graceful_shutdown_timeout_s: float | None = None
    health_check_period_s: float | None = None
    health_check_timeout_s: float | None = None
    ray_actor_options: RayActorOptions | None = None
    placement_group_bundles: list[dict[str, float]] | None = None
    placement_group_strategy: str | None = None
    max_replicas_per_node: int | None = None
    logging_config: dict[str, Any] | None = None


class Application(_RayStrict):
    name: str = Field(min_length=1)
    route_prefix: str | None = None
    import_path: str = Field(pattern=r"^[A-Za-z_][\w.]*[:.][A-Za-z_]\w*$")
    runtime_env: dict[str, Any] | None = None
    host: str | None = None
    port: int | None = None
    deployments: list[Deployment] = Field(default_factory=list)
    args: dict[str, Any] | None = None
    logging_config: dict[str, Any] | None = None
    external_scaler_enabled: bool | None = None

    @field_validator("route_prefix")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and (
            not value.startswith("/") or (value != "/" and value.endswith("/")) or "{" in value
        ):
            raise ValueError(f"route_prefix {value!r} must start with '/' and not end with one")
        return value


class ServeConfig(_RayStrict):
    proxy_location: Literal["Disabled", "HeadOnly", "EveryNode"] | None = None
    http_options: dict[str, Any] | None = None
    grpc_options: dict[str, Any] | None = None
    logging_config: dict[str, Any] | None = None
    target_capacity: float | None = Field(None, ge=0, le=100)
    applications: list[Application] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> ServeConfig:
        for field in ("name", "route_prefix"):
            values = [getattr(a, field) for a in self.applications if getattr(a, field)]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"applications: {field} listed twice: {', '.join(twice)}")
        return self


class ServeConfigError(ValueError):
    """A serve config this project would not send to Ray; the message names the field."""


def check_serve_config(config: dict[str, Any]) -> None:
    """ServeConfigError unless ``config`` passes this project's rules and then Ray Serve's own
    ``ServeDeploySchema`` (imported here: Ray is heavy, and most commands never check)."""
    from ray.serve.schema import ServeDeploySchema

    for model in (ServeConfig, ServeDeploySchema):
        try:
            model.model_validate(config)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ServeConfigError(
                f"serveConfigV2 is not a valid Ray Serve config: {problems}"
            ) from None


def parse_serve_config(text: str) -> dict[str, Any]:
    """``serveConfigV2`` as data (the order of its keys kept); ServeConfigError when it isn't."""
    try:
        config = load_yaml(text)
    except Exception as exc:  # yaml.YAMLError, and what a broken scalar raises
        raise ServeConfigError(f"serveConfigV2 is not YAML: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("applications"), list):
        raise ServeConfigError("serveConfigV2 is not a Ray Serve config (no applications list)")
    return config


def dump_serve_config(config: dict[str, Any]) -> str:
    """The serve config as ``serveConfigV2`` text: the same data always gives the same bytes."""
    return dump_yaml(config)


def application_index(config: dict[str, Any], name: str) -> int | None:
    """Where application ``name`` is in ``config["applications"]``, or None."""
    for index, app in enumerate(config["applications"]):
        if isinstance(app, dict) and app.get("name") == name:
            return index
    return None


def gpu_shares(
    config: dict[str, Any], skip: str | None = None
) -> dict[str, list[tuple[str, float]]]:
    """node -> [(application, num_gpus)] of every pinned GPU deployment, but ``skip``'s."""
    shares: dict[str, list[tuple[str, float]]] = {}
    for app in config["applications"]:
        if not isinstance(app, dict) or app.get("name") == skip:
            continue
        for deployment in app.get("deployments") or []:
            options = deployment.get("ray_actor_options") or {}
            node = node_of(options.get("resources") or {})
            if node is not None and options.get("num_gpus"):
                shares.setdefault(node, []).append((str(app["name"]), float(options["num_gpus"])))
    return shares
