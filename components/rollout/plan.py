"""The plan of a rollout (a dry run): what would be staged, the object's diff, the placement.

Nothing is written or applied: the source is read and hashed, the store is read, the object is
rendered and validated. The current RayService is the one llmw renders (the state a rollout
starts from when no cluster is reachable) or a file (``kubectl get rayservice -o yaml``, or what
``llmw compile`` wrote). A refusal is part of the plan: ``refused`` holds its ``reason`` and
``message``, and what was worked out before it stays in the plan.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from components.cluster.inventory import ClusterInventory, load_inventory
from components.rollout import kserve, rayservice
from components.rollout.application import (
    ModelRef,
    RolloutRefused,
    memory_need_gb,
    place_app,
)
from components.rollout.catalog import ServingCatalog, UnknownAppError, load_catalog
from components.rollout.change import current_entry, current_fraction, roll_out
from components.rollout.sources import SourceError
from components.rollout.staging import StagePreview, VersionConflictError, preview_stage
from components.rollout.store import StoreError
from components.rollout.yaml_text import dump_yaml, load_yaml

if TYPE_CHECKING:
    from components.settings import Settings

Target = Literal["rayservice", "kserve"]


@dataclass(frozen=True)
class RolloutRequest:
    """What ``llmw rollout start`` asks for."""

    source: str  # a folder, a file or an s3:// URI
    app: str
    version: str
    name: str | None = None  # the model's name in the store; the app's by default
    target: Target = "rayservice"
    canary: int | None = None  # KServe: the new model's share of traffic, percent
    memory_gb: float | None = None  # instead of the estimate from the weights
    gpu_fraction: float | None = None  # instead of the application's current share
    node: str | None = None  # pin a node (placement still checks it)
    kserve_mode: kserve.DeploymentMode | None = None  # None: settings.kserve_deployment_mode
    current: Path | None = None  # the current RayService; None: the one llmw renders


def read_current(path: Path | None, settings: Settings) -> tuple[dict[str, Any], str]:
    """The current RayService and where it came from (a file, or ``rendered``)."""
    if path is None:
        return rayservice.render_rayservice(settings), "rendered"
    document = load_yaml(Path(path).read_text(encoding="utf-8"))
    if not isinstance(document, dict) or document.get("kind") != "RayService":
        raise ValueError(f"{path} is not a RayService")
    return document, str(path)


def _diff(before: dict[str, Any], after: dict[str, Any], what: str) -> str:
    return "".join(
        difflib.unified_diff(
            dump_yaml(before).splitlines(keepends=True),
            dump_yaml(after).splitlines(keepends=True),
            fromfile=f"current/{what}",
            tofile=f"rollout/{what}",
        )
    )


def _memory(request: RolloutRequest, preview: StagePreview, settings: Settings) -> dict[str, Any]:
    if request.memory_gb is not None:
        return {"memory_gb": request.memory_gb, "memory_from": "--memory-gb"}
    weights = preview.manifest.weights_bytes
    factor = settings.rollout_memory_factor
    return {
        "memory_gb": memory_need_gb(weights, factor),
        "memory_from": f"weights ({weights} B) x {factor:g}",
    }


def _rayservice_plan(
    request: RolloutRequest,
    current: dict[str, Any],
    model: ModelRef,
    memory_gb: float,
    context: tuple[ServingCatalog, ClusterInventory, Settings],
) -> dict[str, Any]:
    catalog, inventory, settings = context
    change = roll_out(
        current,
        request.app,
        model,
        memory_gb,
        catalog,
        inventory,
        request.gpu_fraction,
        request.node,
    )
    rayservice.validate(change.after, settings)
    name = current["metadata"]["name"]
    return {
        "placement": change.placement.model_dump(mode="json"),
        "serve_config_reformatted": change.reformatted,
        "diff": _diff(change.before, change.after, f"rayservice/{name}"),
        "object": change.after,
    }


def _kserve_plan(
    request: RolloutRequest,
    current: dict[str, Any],
    model: ModelRef,
    memory_gb: float,
    context: tuple[ServingCatalog, ClusterInventory, Settings],
) -> dict[str, Any]:
    catalog, inventory, settings = context
    app = catalog.app(request.app)
    entry = current_entry(current, app.name)
    fraction = request.gpu_fraction or current_fraction(entry, app)
    placement = place_app(app, memory_gb, inventory, fraction, request.node)
    mode = request.kserve_mode or settings.kserve_deployment_mode
    kserve.check_capacity(placement, inventory, mode, request.canary)
    args = entry.get("args") or {}
    stable = ModelRef(str(args.get("model") or app.model), args.get("model_version"))
    before = kserve.render_inferenceservice(app, stable, placement, catalog, settings, mode)
    after = kserve.render_inferenceservice(
        app, model, placement, catalog, settings, mode, request.canary, stable
    )
    kserve.validate(after, settings)
    return {
        "placement": placement.model_dump(mode="json"),
        "kserve_mode": mode,
        "diff": _diff(before, after, f"inferenceservice/{app.name}"),
        "object": after,
    }


_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (UnknownAppError, "unknown_app"),
    (VersionConflictError, "version_conflict"),
    (StoreError, "store"),
    (SourceError, "source"),
)


def plan_rollout(request: RolloutRequest, settings: Settings) -> dict[str, Any]:
    """The plan of ``request``: JSON-ready, ``refused`` None unless a rule refused it.

    Raises only for what is not a refusal: a bad name or version, an unreadable current file,
    a rendered object that fails its schema (a bug).
    """
    plan: dict[str, Any] = {
        "app": request.app,
        "target": request.target,
        "dry_run": True,
        "refused": None,
    }
    try:
        _fill(plan, request, settings)
    except RolloutRefused as exc:
        plan["refused"] = {"reason": exc.reason, "message": exc.message}
    except tuple(cls for cls, _ in _REFUSALS) as exc:
        reason = next(reason for cls, reason in _REFUSALS if isinstance(exc, cls))
        plan["refused"] = {"reason": reason, "message": str(exc)}
    return plan


def _fill(plan: dict[str, Any], request: RolloutRequest, settings: Settings) -> None:
    catalog = load_catalog(settings.serving_catalog)
    inventory = load_inventory(settings.cluster_inventory)
    catalog.app(request.app)  # an unknown app is refused before the source is read
    current, origin = read_current(request.current, settings)
    plan["current"] = origin
    current_entry(current, request.app)
    name = request.name or request.app
    preview = preview_stage(request.source, name, request.version, settings)
    plan["stage"] = preview.summary()
    plan["model"] = {"name": name, "version": request.version, "uri": preview.uri}
    plan.update(_memory(request, preview, settings))
    model = ModelRef(preview.uri, request.version, preview.manifest.digest)
    build = _rayservice_plan if request.target == "rayservice" else _kserve_plan
    plan.update(build(request, current, model, plan["memory_gb"], (catalog, inventory, settings)))
