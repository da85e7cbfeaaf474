"""The kubernetes engine: a rollout's backend on the cluster's RayService through the Kubernetes
API (components/rollout/rollout_flow.py runs the rollout; kube_kserve.py is the KServe target).

The RayService is read from the API (its name and namespace from the serving catalog). A change
edits one application's entry of ``spec.serveConfigV2`` (``roll_out``: placement, the share left
on the node, nothing KubeRay would answer with a new RayCluster) and is written as a JSON merge
patch of that one field, with the ``resourceVersion`` it was computed from (a 409 Conflict reads
and recomputes). KubeRay applies it to the running cluster in place. An entry serves when the
application's status is ``RUNNING`` for the patched generation and its route
(``rollout_serve_url`` + its prefix) answers ``/v1/models`` with the entry's version: the header
every serving/ application sets, the check ray-local makes too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from components.rollout import kube_status, rollout_flow
from components.rollout.application import ModelRef, RolloutRefused
from components.rollout.catalog import load_catalog
from components.rollout.change import roll_out
from components.rollout.kube_api import RAYSERVICE, KubeApi, KubeError
from components.rollout.local_rollout import answers, entry_version, with_entry
from components.rollout.rayservice import render_rayservice
from components.rollout.rayservice import validate as validate_rayservice
from components.rollout.rollout_flow import Backend, Entry, GateOptions
from components.rollout.serve_config import (
    application_index,
    dump_serve_config,
    parse_serve_config,
)

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings


def unreachable(api: KubeApi, exc: KubeError) -> RolloutRefused:
    return RolloutRefused("engine", f"the Kubernetes API ({api.server}) cannot be used: {exc}")


class RayServiceBackend:
    """The cluster's RayService as a rollout backend."""

    engine = "kubernetes"
    target = "rayservice"
    errors: tuple[type[Exception], ...] = (KubeError,)

    def __init__(self, settings: Settings, app_name: str, api: KubeApi | None = None) -> None:
        self.settings = settings
        catalog = load_catalog(settings.serving_catalog)
        self.app = catalog.app(app_name)
        self.name, self.namespace = catalog.rayservice.name, catalog.rayservice.namespace
        self.api = api or KubeApi.from_settings(settings)
        self._generation = 0  # the generation of our last write: older status does not count
        self._document: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any]:
        found = self.api.get(RAYSERVICE, self.name, self.namespace)
        if found is None:
            raise RolloutRefused(
                "engine",
                f"no RayService {self.namespace}/{self.name} at {self.api.server}: apply the one "
                "llmw compile renders (Flux) before rolling a model out",
            )
        return found

    def check(self) -> None:
        try:
            self._read()
        except KubeError as exc:
            raise unreachable(self.api, exc) from None

    def current(self) -> Entry:
        """The application's entry in the live serveConfigV2; keeps the RayService (this
        application's rendered entry added when it has none) for ``change``."""
        document = self._read()
        config = parse_serve_config(str(document["spec"]["serveConfigV2"]))
        index = application_index(config, self.app.name)
        live = None if index is None else dict(config["applications"][index])
        if live is None:
            rendered = parse_serve_config(render_rayservice(self.settings)["spec"]["serveConfigV2"])
            at = application_index(rendered, self.app.name)
            if at is not None:
                config = with_entry(config, self.app.name, rendered["applications"][at])
        document["spec"]["serveConfigV2"] = dump_serve_config(config)
        self._document = {k: v for k, v in document.items() if k != "status"}
        return live

    def change(self, model: ModelRef, memory_gb: float, request: RolloutRequest) -> Entry:
        from components.cluster.inventory import load_inventory

        if self._document is None:
            self.current()
        assert self._document is not None
        catalog = load_catalog(self.settings.serving_catalog)
        inventory = load_inventory(self.settings.cluster_inventory)
        change = roll_out(
            self._document, self.app.name, model, memory_gb, catalog, inventory,
            request.gpu_fraction, request.node,
        )  # fmt: skip
        validate_rayservice(change.after, self.settings)
        return change.entry_after

    def version(self, entry: Entry) -> str | None:
        return entry_version(entry)

    def route(self) -> str:
        return self.settings.rollout_serve_url.rstrip("/") + self.app.route_prefix

    def serving(self) -> bool:
        state, _ = kube_status.rayservice_app(self._read(), self.app.name)
        return state == "serving"

    def apply(self, entry: Entry) -> None:
        def change(document: dict[str, Any]) -> dict[str, Any]:
            config = parse_serve_config(str(document["spec"]["serveConfigV2"]))
            document["spec"]["serveConfigV2"] = dump_serve_config(
                with_entry(config, self.app.name, entry)
            )
            return document

        written = self.api.update(RAYSERVICE, self.name, self.namespace, change)
        self._generation = int(written["metadata"].get("generation") or 0)

    def wait_serving(self, entry: Entry, timeout_s: float) -> float:
        version = entry_version(entry)

        def read() -> tuple[str, str]:
            obj = self.api.get(RAYSERVICE, self.name, self.namespace)
            if entry is None:
                return kube_status.rayservice_app_gone(obj, self.app.name, self._generation)
            state, why = kube_status.rayservice_app(obj, self.app.name, self._generation)
            if state == "serving" and not answers(self.route(), version):
                return "pending", f"RUNNING, but {self.route()} does not answer with {version}"
            return state, why

        return rollout_flow.poll(read, timeout_s, self.settings.kube_poll_interval_s)

    def promote(self, entry: Entry, timeout_s: float) -> Entry:
        return entry

    def describe(self) -> dict[str, Any]:
        try:
            obj = self.api.get(RAYSERVICE, self.name, self.namespace)
        except KubeError as exc:
            return {"reachable": False, "error": str(exc)}
        statuses = ((obj or {}).get("status") or {}).get("activeServiceStatus") or {}
        state = (statuses.get("applicationStatuses") or {}).get(self.app.name)
        config = parse_serve_config(str(obj["spec"]["serveConfigV2"])) if obj else {}
        index = application_index(config, self.app.name) if obj else None
        entry = None if index is None else config["applications"][index]
        return {
            "reachable": True,
            "object": f"rayservices/{self.name} in {self.namespace}" if obj else None,
            "kube": {"status": (state or {}).get("status"), "version": entry_version(entry),
                     "message": (state or {}).get("message", "")},
        }  # fmt: skip


def backend_for(settings: Settings, app_name: str, target: str) -> Backend:
    """The kubernetes engine's backend for ``target`` (rayservice or kserve)."""
    try:
        api = KubeApi.from_settings(settings)
    except KubeError as exc:
        raise RolloutRefused("engine", str(exc)) from None
    if target == "kserve":
        from components.rollout.kube_kserve import KServeBackend

        return KServeBackend(settings, app_name, api)
    return RayServiceBackend(settings, app_name, api)


def start_kube(
    request: RolloutRequest, settings: Settings, options: GateOptions | None = None
) -> dict[str, Any]:
    """Roll ``request`` out on the cluster; ``outcome`` promoted or rolled_back."""
    backend = backend_for(settings, request.app, request.target)
    return rollout_flow.start(backend, request, settings, options or GateOptions())


def undo_kube(app: str, settings: Settings, name: str | None = None,
              target: str = "rayservice") -> dict[str, Any]:  # fmt: skip
    return rollout_flow.undo(backend_for(settings, app, target), settings, name)


def status_kube(app: str, settings: Settings, name: str | None = None,
                target: str = "rayservice") -> dict[str, Any]:  # fmt: skip
    return rollout_flow.status(backend_for(settings, app, target), settings, name)
