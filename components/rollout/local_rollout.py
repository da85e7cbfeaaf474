"""The ray-local engine: a rollout's backend on the local Ray (components/rollout/rollout_flow.py
runs the rollout itself).

The current serve config is what Ray runs (``GET /api/serve/applications/``, each application's
``deployed_app_config``); an application it does not run yet starts from the RayService llmw
renders. ``roll_out`` changes that application's entry (refusing what the cluster would refuse),
and the new config is PUT as KubeRay does. An entry serves when the application is RUNNING with
its version and its route answers with it (the version header of serving/'s applications).
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any

import httpx

from components.rollout import rollout_flow
from components.rollout.application import ModelRef, RolloutRefused
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
from components.rollout.rollout_flow import Entry, GateOptions, NotServing
from components.rollout.serve_config import (
    application_index,
    dump_serve_config,
    parse_serve_config,
)

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings

__all__ = ["GateOptions", "NotServing", "RayLocalBackend", "start_local", "status_local",
           "undo_local", "wait_serving"]  # fmt: skip


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
            if state["status"] == "RUNNING" and answers(ray.http_url + route, version):
                return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise NotServing(f"{app} {version}: not serving after {timeout_s:g} s ({state})")
        time.sleep(0.5)


def answers(route_url: str, version: str | None) -> bool:
    """Whether the application at ``route_url`` answers ``/v1/models`` with ``version``."""
    try:
        response = httpx.get(f"{route_url}/v1/models", timeout=10)
    except httpx.HTTPError:
        return False
    served = response.headers.get(VERSION_HEADER) or None
    return response.status_code == 200 and served == version


def entry_version(entry: Entry) -> str | None:
    """The model version a serve config application entry serves."""
    return None if entry is None else (entry.get("args") or {}).get("model_version")


def with_entry(config: dict[str, Any], app: str, entry: Entry) -> dict[str, Any]:
    """``config`` with application ``app``'s entry replaced in place (appended, or removed)."""
    applications = [dict(a) for a in config.get("applications") or []]
    index = application_index(config, app)
    if index is None:
        applications += [entry] if entry else []
    elif entry is None:
        del applications[index]
    else:
        applications[index] = entry
    return {**config, "applications": applications}


class RayLocalBackend:
    """ray-local as a rollout backend (the RayService target only)."""

    engine = "ray-local"
    target = "rayservice"
    errors: tuple[type[Exception], ...] = (RayLocalError,)

    def __init__(self, settings: Settings, app_name: str) -> None:
        self.settings = settings
        self.ray = RayLocal(settings)
        self.app = load_catalog(settings.serving_catalog).app(app_name)
        self._document: dict[str, Any] | None = None

    def check(self) -> None:
        if not self.ray.is_up():
            raise RolloutRefused("engine", "ray-local is not running: start it with llmw serve up")

    def current(self) -> Entry:
        """The running entry; keeps the RayService it belongs to (the rendered one, with Ray's
        running config, this application added when Ray does not run it) for ``change``."""
        running = deployed_config(self.ray.details())
        document = render_rayservice(self.settings)
        rendered = parse_serve_config(document["spec"]["serveConfigV2"])
        config = {**copy.deepcopy(running), "http_options": rendered["http_options"]}
        index = application_index(rendered, self.app.name)
        if application_index(config, self.app.name) is None and index is not None:
            config["applications"].append(rendered["applications"][index])
        document["spec"]["serveConfigV2"] = dump_serve_config(config)
        self._document = document
        index = application_index(running, self.app.name)
        return None if index is None else dict(running["applications"][index])

    def change(self, model: ModelRef, memory_gb: float, request: RolloutRequest) -> Entry:
        from components.cluster.inventory import load_inventory

        if self._document is None:
            self.current()
        assert self._document is not None
        catalog = load_catalog(self.settings.serving_catalog)
        inventory = load_inventory(self.settings.cluster_inventory)
        return roll_out(
            self._document, self.app.name, model, memory_gb, catalog, inventory,
            request.gpu_fraction, request.node,
        ).entry_after  # fmt: skip

    def version(self, entry: Entry) -> str | None:
        return entry_version(entry)

    def route(self) -> str:
        return self.ray.http_url + self.app.route_prefix

    def serving(self) -> bool:
        state = app_statuses(self.ray.details()).get(self.app.name) or {}
        return state.get("status") == "RUNNING"

    def apply(self, entry: Entry) -> None:
        running = deployed_config(self.ray.details())
        self.ray.apply(with_entry(running, self.app.name, entry))

    def wait_serving(self, entry: Entry, timeout_s: float) -> float:
        route = self.app.route_prefix if entry is not None else ""
        return wait_serving(self.ray, self.app.name, entry_version(entry), route, timeout_s)

    def promote(self, entry: Entry, timeout_s: float) -> Entry:
        return entry

    def describe(self) -> dict[str, Any]:
        state = self.ray.status()
        return {"up": state["up"], "ray": state["apps"].get(self.app.name)}


def start_local(
    request: RolloutRequest, settings: Settings, options: GateOptions | None = None
) -> dict[str, Any]:
    """Roll ``request`` out on ray-local; ``outcome`` promoted or rolled_back."""
    if request.target != "rayservice":
        raise RolloutRefused(
            "engine", "ray-local runs the RayService: use --engine kubernetes for --target kserve"
        )
    backend = RayLocalBackend(settings, request.app)
    return rollout_flow.start(backend, request, settings, options or GateOptions())


def undo_local(app_name: str, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """Restore the entry the last promotion replaced; RolloutRefused when there is none."""
    return rollout_flow.undo(RayLocalBackend(settings, app_name), settings, name)


def status_local(app_name: str, settings: Settings, name: str | None = None) -> dict[str, Any]:
    """What Ray runs for the application, and the versions its history records."""
    return rollout_flow.status(RayLocalBackend(settings, app_name), settings, name)
