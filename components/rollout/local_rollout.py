"""A rollout on ray-local: stage, record, apply, wait, gate, then promote or roll back.

The current serve config is what Ray runs (``GET /api/serve/applications/``, each application's
``deployed_app_config``); an application it does not run yet starts from the RayService llmw
renders. ``roll_out`` changes that application's entry (refusing what the cluster would refuse),
the previous entry is written to the history before anything is applied, and the new config is
PUT as KubeRay does. Then: wait until the application is RUNNING with the new version and its
route answers with it, run the gate against the baseline measured on the old model before the
change, and promote, or restore the previous config and wait until the old model serves again.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from components.rollout import gate, history
from components.rollout.application import ModelRef, RolloutRefused, memory_need_gb
from components.rollout.catalog import load_catalog
from components.rollout.change import roll_out
from components.rollout.ray_local import (
    VERSION_HEADER,
    RayLocal,
    RayLocalError,
    app_statuses,
    deployed_config,
)
from components.rollout.rayservice import render_rayservice
from components.rollout.serve_config import (
    application_index,
    dump_serve_config,
    parse_serve_config,
)
from components.rollout.staging import stage_model

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings


class NotServing(RuntimeError):
    """The application did not reach RUNNING with the expected version (failed or timed out)."""


@dataclass
class GateOptions:
    thresholds: gate.GateThresholds = field(default_factory=gate.GateThresholds)
    labelled_set: str | None = None
    rounds: int = 2


def wait_serving(
    ray: RayLocal, app: str, version: str | None, route: str, timeout_s: float
) -> float:
    """Seconds until ``app`` is RUNNING with ``version`` and its route answers with it (or,
    with ``version`` None and no route, until it is gone); NotServing on DEPLOY_FAILED."""
    started = time.monotonic()
    while True:
        state = app_statuses(ray.details()).get(app)
        if state is None and not route:
            return time.monotonic() - started
        if state and state["version"] == version:
            if state["status"] == "DEPLOY_FAILED":
                raise NotServing(f"{app} {version}: DEPLOY_FAILED: {state['message'][-800:]}")
            if state["status"] == "RUNNING" and _answers(ray, route, version):
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise NotServing(f"{app} {version}: not serving after {timeout_s:g} s ({state})")
        time.sleep(0.5)


def _answers(ray: RayLocal, route: str, version: str | None) -> bool:
    try:
        response = httpx.get(f"{ray.http_url}{route}/v1/models", timeout=10)
    except httpx.HTTPError:
        return False
    served = response.headers.get(VERSION_HEADER) or None
    return response.status_code == 200 and served == version


def _current(ray: RayLocal, settings: Settings, app: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the RayService to change, the serve config Ray runs now)."""
    running = deployed_config(ray.details())
    document = render_rayservice(settings)
    rendered = parse_serve_config(document["spec"]["serveConfigV2"])
    config = {**copy.deepcopy(running), "http_options": rendered["http_options"]}
    if application_index(config, app) is None:
        index = application_index(rendered, app)
        if index is not None:
            config["applications"].append(rendered["applications"][index])
    document["spec"]["serveConfigV2"] = dump_serve_config(config)
    return document, running


def _entry(config: dict[str, Any], app: str) -> dict[str, Any] | None:
    index = application_index(config, app)
    return None if index is None else dict(config["applications"][index])


def _with_entry(config: dict[str, Any], app: str, entry: dict[str, Any] | None) -> dict[str, Any]:
    others = [a for a in config["applications"] if a.get("name") != app]
    return {**config, "applications": [*others, *([entry] if entry else [])]}


def _version(entry: dict[str, Any] | None) -> str | None:
    return None if entry is None else (entry.get("args") or {}).get("model_version")


def start_local(
    request: RolloutRequest, settings: Settings, options: GateOptions | None = None
) -> dict[str, Any]:
    """Roll ``request`` out on ray-local; ``outcome`` promoted, rolled_back or refused."""
    options = options or GateOptions()
    ray = RayLocal(settings)
    if not ray.is_up():
        raise RolloutRefused("engine", "ray-local is not running: start it with llmw serve up")
    catalog = load_catalog(settings.serving_catalog)
    app = catalog.app(request.app)
    name = request.name or request.app
    document, running = _current(ray, settings, app.name)
    before = _entry(running, app.name)
    staged = stage_model(request.source, name, request.version, settings)
    memory = request.memory_gb or memory_need_gb(
        staged.manifest.weights_bytes, settings.rollout_memory_factor
    )
    model = ModelRef(staged.uri, request.version, staged.manifest.digest)
    from components.cluster.inventory import load_inventory

    inventory = load_inventory(settings.cluster_inventory)
    change = roll_out(
        document, app.name, model, memory, catalog, inventory, request.gpu_fraction, request.node
    )
    entry = change.entry_after
    result: dict[str, Any] = {
        "app": app.name,
        "engine": "ray-local",
        "version": request.version,
        "previous_version": _version(before),
        "stage": staged.summary(),
    }
    record = {"app": app.name, "version": request.version, "previous_version": _version(before)}
    history.append_event(
        name, {**record, "event": "started", "previous_entry": before, "entry": entry}, settings
    )
    baseline = None
    if before is not None and app_statuses(ray.details()).get(app.name, {}).get("status") == (
        "RUNNING"
    ):
        baseline = _measure(ray, app.name, app.route_prefix, "old", options)
    return _apply_and_decide(
        ray,
        settings,
        (name, app.route_prefix),
        running,
        entry,
        before,
        baseline,
        options,
        result,
        record,
    )


def _measure(ray: RayLocal, app: str, route: str, label: str, options: GateOptions) -> Any:
    labelled = gate.load_labelled_set(options.labelled_set)
    return gate.measure(app, ray.http_url + route, label, labelled, options.rounds)


def _apply_and_decide(
    ray: RayLocal,
    settings: Settings,
    where: tuple[str, str],
    running: dict[str, Any],
    entry: dict[str, Any],
    before: dict[str, Any] | None,
    baseline: Any,
    options: GateOptions,
    result: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, Any]:
    name, route = where
    app, version = record["app"], record["version"]
    timeout = settings.rollout_ready_timeout_s
    started = time.monotonic()
    report = None
    try:
        ray.apply(_with_entry(running, app, entry))
        result["ready_s"] = round(wait_serving(ray, app, version, route, timeout), 2)
        report = gate.decide(
            app, baseline, _measure(ray, app, route, "new", options), options.thresholds
        )
        failure = None if report.passed else "gate failed: " + "; ".join(report.reasons)
    except (NotServing, RayLocalError) as exc:
        failure = str(exc)
    result["apply_to_decision_s"] = round(time.monotonic() - started, 2)
    if report is not None:
        result["gate"] = report.to_json()
        result["gate_table"] = report.table()
        gate_event = {**record, "event": "gate", "gate": report.to_json()}
        history.append_event(name, gate_event, settings)
    if failure is None:
        history.append_event(
            name,
            {
                **record,
                "event": "promoted",
                "serving": version,
                "previous_entry": before,
                "entry": entry,
            },
            settings,
        )
        return {**result, "outcome": "promoted"}
    restored = _restore(ray, running, app, before, route, timeout)
    history.append_event(
        name,
        {**record, "event": "rolled_back", "serving": _version(before), "reason": failure},
        settings,
    )
    return {**result, "outcome": "rolled_back", "reason": failure, "restore_s": restored}


def _restore(
    ray: RayLocal,
    running: dict[str, Any],
    app: str,
    before: dict[str, Any] | None,
    route: str,
    timeout: float,
) -> float:
    """Apply the previous config and wait until the old model serves (or the app is gone)."""
    ray.apply(_with_entry(running, app, before))
    version = _version(before)
    return round(wait_serving(ray, app, version, route if before else "", timeout), 2)


def undo_local(app_name: str, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """Restore the entry the last promotion replaced; RolloutRefused when there is none."""
    ray = RayLocal(settings)
    if not ray.is_up():
        raise RolloutRefused("engine", "ray-local is not running: start it with llmw serve up")
    app = load_catalog(settings.serving_catalog).app(app_name)
    name = name or app.name
    decisions = [
        e for e in history.read_history(name, settings) if e["event"] in ("promoted", "undone")
    ]
    if not decisions or decisions[-1]["event"] != "promoted":
        raise RolloutRefused("nothing_to_undo", f"{app.name}: no promotion to undo")
    last = decisions[-1]
    running = deployed_config(ray.details())
    seconds = _restore(
        ray,
        running,
        app.name,
        last["previous_entry"],
        app.route_prefix,
        settings.rollout_ready_timeout_s,
    )
    serving = _version(last["previous_entry"])
    event = {"app": app.name, "event": "undone", "version": last["version"], "serving": serving}
    history.append_event(name, event, settings)
    return {"app": app.name, "undone": last["version"], "serving": serving, "restore_s": seconds}


def status_local(app_name: str, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """What Ray runs for the application, and the versions its history records."""
    ray = RayLocal(settings)
    state = ray.status()
    current, previous = history.serving_versions(history.read_history(name or app_name, settings))
    return {
        "app": app_name,
        "ray": state["apps"].get(app_name),
        "up": state["up"],
        "current_version": current,
        "previous_version": previous,
    }
