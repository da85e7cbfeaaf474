"""The change a rollout makes to the RayService: one application's entry in ``serveConfigV2``.

Given the current RayService (rendered by llmw, or read from the cluster), an application and a
model, ``roll_out`` places the model (memory, framework, vendor, the GPU share left on the node)
and returns the new RayService, in which that application's entry has the new model location,
``num_gpus`` share, node resource and GPU environment, and nothing else changed: the serve config
is parsed, that one entry edited, and dumped again with the formatting llmw renders (the other
entries' data is untouched; their text too when the config was llmw's). The result is checked
with ``cluster_change``: a RayService that KubeRay would answer with a new RayCluster is refused.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from components.cluster.inventory import ClusterInventory
from components.cluster.placement import Placement
from components.rollout.application import ModelRef, RolloutRefused, check_share, place_app
from components.rollout.catalog import ServeApp, ServingCatalog, UnknownAppError
from components.rollout.cluster_change import cluster_change
from components.rollout.serve_config import (
    NODE_RESOURCE_ASK,
    NODE_RESOURCE_PREFIX,
    ServeConfigError,
    application_index,
    check_serve_config,
    dump_serve_config,
    node_resource,
    parse_serve_config,
)

# The keys of an application entry in the order llmw writes them; others follow in their order.
_ENTRY_ORDER = ("name", "route_prefix", "import_path", "runtime_env", "args", "deployments")


@dataclass(frozen=True)
class RayServiceChange:
    """A rollout's RayService: before and after, and what decided it."""

    before: dict[str, Any]
    after: dict[str, Any]
    app: str
    placement: Placement
    entry_before: dict[str, Any]
    entry_after: dict[str, Any]
    reformatted: bool  # the current serveConfigV2 was not in llmw's formatting


def current_entry(document: dict[str, Any], app: str) -> dict[str, Any]:
    """Application ``app``'s entry in the RayService's ``serveConfigV2`` (RolloutRefused)."""
    config = _serve_config(document)
    index = application_index(config, app)
    if index is None:
        names = ", ".join(str(a.get("name")) for a in config["applications"])
        raise RolloutRefused(
            "unknown_app", f"the RayService's serveConfigV2 has no application {app!r} ({names})"
        )
    entry: dict[str, Any] = config["applications"][index]
    return entry


def _serve_config(document: dict[str, Any]) -> dict[str, Any]:
    try:
        text = document["spec"]["serveConfigV2"]
    except (KeyError, TypeError):
        raise ServeConfigError("the RayService has no spec.serveConfigV2") from None
    return parse_serve_config(str(text))


def _deployment(entry: dict[str, Any], app: ServeApp) -> dict[str, Any]:
    for deployment in entry.get("deployments") or []:
        if deployment.get("name") == app.deployment:
            return dict(deployment)
    raise ServeConfigError(
        f"application {app.name!r} has no deployment {app.deployment!r} in serveConfigV2"
    )


def current_fraction(entry: dict[str, Any], app: ServeApp) -> float:
    """The GPU share the application's deployment has now (the catalog's when it has none)."""
    options = _deployment(entry, app).get("ray_actor_options") or {}
    share = options.get("num_gpus")
    return float(share) if share else app.gpu_fraction


def _worker_group(document: dict[str, Any], node: str) -> dict[str, Any] | None:
    groups = document["spec"].get("rayClusterConfig", {}).get("workerGroupSpecs") or []
    for group in groups:
        if node_resource(node) in str((group.get("rayStartParams") or {}).get("resources", "")):
            return dict(group)
    return None


def check_worker_group(document: dict[str, Any], app: ServeApp, placement: Placement) -> None:
    """RolloutRefused unless the RayCluster already runs ``placement``'s node with its image."""
    assert placement.node is not None
    group = _worker_group(document, placement.node)
    outside = (
        "changing rayClusterConfig makes KubeRay v1.5.1 start a new RayCluster, which needs a "
        "second copy of every GPU; render the RayService again (llmw compile) and apply it "
        "while nothing serves"
    )
    if group is None:
        raise RolloutRefused(
            "new_cluster",
            f"{app.name} goes to {placement.node}, where the RayCluster has no worker group "
            f"(none advertises {node_resource(placement.node)}): {outside}",
        )
    containers = group.get("template", {}).get("spec", {}).get("containers") or [{}]
    image = containers[0].get("image")
    if image != placement.image:
        raise RolloutRefused(
            "new_cluster",
            f"{app.name} on {placement.node} needs the image {placement.image}, but worker "
            f"group {group.get('groupName')} runs {image}: {outside}",
        )


def _new_entry(
    entry: dict[str, Any],
    app: ServeApp,
    model: ModelRef,
    placement: Placement,
    gpu_env: set[str],
) -> dict[str, Any]:
    assert placement.node is not None
    changed = copy.deepcopy(entry)
    runtime_env = dict(changed.pop("runtime_env", None) or {})
    env = {k: v for k, v in (runtime_env.get("env_vars") or {}).items() if k not in gpu_env}
    env.update(placement.env)
    if env:
        runtime_env["env_vars"] = dict(sorted(env.items()))
    else:
        runtime_env.pop("env_vars", None)
    if runtime_env:
        changed["runtime_env"] = runtime_env
    changed["args"] = {**(changed.get("args") or {}), **model.args(app)}
    deployments = []
    for deployment in changed.get("deployments") or []:
        if deployment.get("name") == app.deployment:
            deployment = copy.deepcopy(deployment)
            options = deployment.setdefault("ray_actor_options", {})
            options["num_gpus"] = placement.gpu_fraction
            resources = {
                k: v
                for k, v in (options.get("resources") or {}).items()
                if not k.startswith(NODE_RESOURCE_PREFIX)
            }
            resources[node_resource(placement.node)] = NODE_RESOURCE_ASK
            options["resources"] = resources
        deployments.append(deployment)
    changed["deployments"] = deployments
    ordered = {k: changed[k] for k in _ENTRY_ORDER if k in changed}
    return {**ordered, **{k: v for k, v in changed.items() if k not in ordered}}


def roll_out(
    current: dict[str, Any],
    app_name: str,
    model: ModelRef,
    memory_gb: float,
    catalog: ServingCatalog,
    inventory: ClusterInventory,
    gpu_fraction: float | None = None,
    node: str | None = None,
) -> RayServiceChange:
    """The RayService with ``app_name`` serving ``model``; RolloutRefused naming the reason."""
    try:
        app = catalog.app(app_name)
    except UnknownAppError as exc:
        raise RolloutRefused("unknown_app", str(exc)) from None
    config = _serve_config(current)
    entry = current_entry(current, app.name)
    fraction = gpu_fraction if gpu_fraction is not None else current_fraction(entry, app)
    placement = place_app(app, memory_gb, inventory, fraction, node)
    check_share(config, app, placement, inventory)
    check_worker_group(current, app, placement)
    gpu_env = {key for n in inventory.gpu_nodes() if n.gpu for key in n.gpu.env}
    new_entry = _new_entry(entry, app, model, placement, gpu_env)
    index = application_index(config, app.name)
    assert index is not None
    reformatted = dump_serve_config(config) != current["spec"]["serveConfigV2"]
    config["applications"][index] = new_entry
    check_serve_config(config)
    after = copy.deepcopy(current)
    after["spec"]["serveConfigV2"] = dump_serve_config(config)
    cluster_change(current, after)
    return RayServiceChange(current, after, app.name, placement, entry, new_entry, reformatted)
