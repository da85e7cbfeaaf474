"""The fake API server's controllers: ``status`` moved along as KubeRay and KServe move it.

After a write that changes ``spec`` (a new generation), the controller observes it after
``reconcile_delay_s`` (``status.observedGeneration``; a changed RayService application goes
``DEPLOYING``, an InferenceService's ``Ready`` goes False), and ``ready_delay_s`` later the new
model is up: the application ``RUNNING`` / ``Ready`` True with the traffic its canary asks for,
unless the test's ``outcomes`` say otherwise for that model version (``deploy_failed``:
``DEPLOY_FAILED`` / a failed load; ``never_ready``: it stays where it is). A RayService
application whose entry did not change keeps its status, as Ray Serve keeps it running. Each
model that comes up is reported as a ``Served`` (to the test's ``on_serving``), so what answers
on its route can follow what the cluster runs; an application or InferenceService that goes
away is reported with version None.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from components.rollout.serve_config import parse_serve_config

if TYPE_CHECKING:
    from testing.kube_api_server import FakeKubeApi, Key

MODE = "serving.kserve.io/deploymentMode"


@dataclass(frozen=True)
class Served:
    """A model that came up (or, ``up`` False, an application that went away)."""

    kind: str  # RayService, InferenceService
    name: str  # the object's name
    app: str  # the application (RayService) or the object's name
    route_prefix: str
    version: str | None  # the model version it serves (None: not a staged one)
    up: bool = True


def model_version(location: str | None) -> str:
    """The version a staged model's location names: ``.../<name>/<version>/``."""
    return str(location or "").rstrip("/").rpartition("/")[2]


class Controllers:
    """Timed status changes for the objects of one FakeKubeApi."""

    def __init__(self, api: FakeKubeApi, ready_delay_s: float, reconcile_delay_s: float) -> None:
        self.api = api
        self.ready_delay_s = ready_delay_s
        self.reconcile_delay_s = reconcile_delay_s
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._applied: dict[Key, dict[str, Any]] = {}  # RayService: app -> entry run
        self._revisions: dict[Key, int] = {}
        self.errors: list[str] = []  # what went wrong in the controller thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()

    def _at(self, delay_s: float, action: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._queue, (time.monotonic() + delay_s, next(self._seq), action))
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._stop and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(wait)
                if self._stop:
                    return
                _, _, action = heapq.heappop(self._queue)
            try:
                with self.api.lock:
                    action()
            except Exception:  # a bug of the fake (a status its CRD refuses): the test fails
                self.errors.append(traceback.format_exc())

    # --- events from the store ------------------------------------------------------------

    def changed(self, key: Key, generation: int) -> None:
        self._at(self.reconcile_delay_s, lambda: self._observe(key, generation, settle=False))

    def settle(self, key: Key) -> None:
        """Observe and bring up the object's current generation now (a test's starting state)."""
        with self.api.lock:
            generation = self.api.objects[key]["metadata"]["generation"]
            self._observe(key, generation, settle=True)

    def deleted(self, key: Key) -> None:
        obj_apps = self._applied.pop(key, {})
        for app, entry in obj_apps.items():
            self._report("RayService", key, app, entry.get("route_prefix", ""), None, up=False)
        if key[0] == "inferenceservices":
            self._report("InferenceService", key, key[2], f"/kserve/{key[2]}", None, up=False)

    def _report(self, kind: str, key: Key, app: str, route: str, version: str | None,
                up: bool = True) -> None:  # fmt: skip
        served = Served(kind, key[2], app, route, version, up)
        self.api.served.append(served)
        if self.api.on_serving is not None:
            self.api.on_serving(served)

    def _current(self, key: Key, generation: int) -> dict[str, Any] | None:
        obj = self.api.objects.get(key)
        if obj is None or obj["metadata"]["generation"] != generation:
            return None  # gone, or a newer write supersedes this one
        return obj

    def _observe(self, key: Key, generation: int, settle: bool) -> None:
        obj = self._current(key, generation)
        observed = (obj or {}).get("status", {}).get("observedGeneration")
        if obj is None or (observed == generation and not settle):
            return
        if key[0] == "rayservices":
            self._observe_rayservice(key, obj, generation, settle)
        else:
            self._observe_isvc(key, obj, generation, settle)

    # --- KubeRay ----------------------------------------------------------------------------

    def _observe_rayservice(self, key: Key, obj: dict[str, Any], generation: int,
                            settle: bool) -> None:  # fmt: skip
        config = parse_serve_config(str(obj["spec"]["serveConfigV2"]))
        before = self._applied.get(key, {})
        old = ((obj.get("status") or {}).get("activeServiceStatus") or {}).get(
            "applicationStatuses"
        ) or {}
        statuses: dict[str, Any] = {}
        entries = {a["name"]: a for a in config["applications"]}
        for name, entry in entries.items():
            if before.get(name) == entry and name in old:
                statuses[name] = old[name]
            else:
                statuses[name] = _app_status(entry, "DEPLOYING", "UPDATING")
                if settle:
                    self._ready_app(key, name, entry, statuses)
                else:
                    self._at(self.ready_delay_s, lambda n=name, e=entry: self._app_up(key, n, e))
        for gone in set(before) - set(entries):
            route = before[gone].get("route_prefix", "")
            self._report("RayService", key, gone, route, None, up=False)
        self._applied[key] = entries
        self.api.set_status(key, self._rayservice_status(key, generation, statuses))

    def _rayservice_status(self, key: Key, generation: int, apps: dict[str, Any]) -> dict[str, Any]:
        ready = all(a["status"] == "RUNNING" for a in apps.values())
        return {
            "observedGeneration": generation,
            "activeServiceStatus": {"applicationStatuses": apps,
                                    "rayClusterName": f"{key[2]}-raycluster-x7k2p"},
            "numServeEndpoints": 1,
            "lastUpdateTime": _now(),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                            "reason": "RayServiceReady" if ready else "Deploying",
                            "message": "" if ready else "applications are deploying",
                            "lastTransitionTime": _now(), "observedGeneration": generation}],
        }  # fmt: skip

    def _ready_app(self, key: Key, name: str, entry: dict[str, Any],
                   statuses: dict[str, Any]) -> None:  # fmt: skip
        """Bring application ``name`` up in ``statuses`` (or fail it, as the test says)."""
        version = (entry.get("args") or {}).get("model_version")
        outcome = self.api.outcomes.get(str(version), "ok")
        if outcome == "never_ready":
            return
        if outcome == "deploy_failed":
            statuses[name] = _app_status(entry, "DEPLOY_FAILED", "UNHEALTHY",
                f"Deploying application {name} failed: the replica of {version} raised "
                "RuntimeError while loading the model (injected by the test)")  # fmt: skip
            return
        statuses[name] = _app_status(entry, "RUNNING", "HEALTHY")
        self._report("RayService", key, name, entry.get("route_prefix", ""), version)

    def _app_up(self, key: Key, name: str, entry: dict[str, Any]) -> None:
        obj = self.api.objects.get(key)
        if obj is None or self._applied.get(key, {}).get(name) != entry:
            return  # superseded: another entry runs now
        status = dict(obj.get("status") or {})
        apps = dict(status["activeServiceStatus"]["applicationStatuses"])
        self._ready_app(key, name, entry, apps)
        generation = status.get("observedGeneration", obj["metadata"]["generation"])
        self.api.set_status(key, self._rayservice_status(key, generation, apps))

    # --- KServe -----------------------------------------------------------------------------

    def _observe_isvc(self, key: Key, obj: dict[str, Any], generation: int, settle: bool) -> None:
        status = dict(obj.get("status") or {})
        status["observedGeneration"] = generation
        status["conditions"] = [_condition("Ready", "False", "PredictorNotReady",
                                           "the new revision is starting")]  # fmt: skip
        active = ((status.get("modelStatus") or {}).get("states") or {}).get("activeModelState")
        status["modelStatus"] = {"transitionStatus": "InProgress",
                                 "states": {"activeModelState": active or "",
                                            "targetModelState": "Loading"}}  # fmt: skip
        self.api.set_status(key, status)
        if settle:
            self._isvc_up(key, generation)
        else:
            self._at(self.ready_delay_s, lambda: self._isvc_up(key, generation))

    def _isvc_up(self, key: Key, generation: int) -> None:
        obj = self._current(key, generation)
        if obj is None:
            return
        spec, status = obj["spec"], dict(obj.get("status") or {})
        newest = (spec.get("canary") or [{}])[-1].get("predictor") or spec["predictor"]
        version = model_version(newest.get("model", {}).get("storageUri"))
        outcome = self.api.outcomes.get(version, "ok")
        if outcome == "never_ready":
            return
        if outcome == "deploy_failed":
            status["conditions"] = [_condition("Ready", "False", "RevisionFailed",
                                               f"model {version} failed to load")]  # fmt: skip
            status["modelStatus"] = {
                "transitionStatus": "BlockedByFailedLoad",
                "states": {"activeModelState": "", "targetModelState": "FailedToLoad"},
                "lastFailureInfo": {"reason": "ModelLoadFailed",
                                    "message": f"{version}: injected by the test"},
            }  # fmt: skip
            self.api.set_status(key, status)
            return
        self.api.set_status(key, self._isvc_ready(key, obj, status))
        self._report("InferenceService", key, key[2], f"/kserve/{key[2]}", version)

    def _isvc_ready(self, key: Key, obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        spec, name = obj["spec"], key[2]
        mode = (obj["metadata"].get("annotations") or {}).get(MODE, "Serverless")
        url = f"http://{name}.{key[1]}.example.com"
        predictor = dict((status.get("components") or {}).get("predictor") or {})
        predictor["url"] = url
        if mode == "Serverless":
            number = self._revisions.get(key, 0) + 1
            self._revisions[key] = number
            revision = f"{name}-predictor-{number:05d}"
            previous = predictor.get("latestRolledoutRevision")
            percent = spec["predictor"].get("canaryTrafficPercent", 100)
            traffic = [{"revisionName": revision, "percent": percent, "latestRevision": True,
                        "tag": "latest"}]  # fmt: skip
            if percent < 100 and previous:
                traffic.append({"revisionName": previous, "percent": 100 - percent,
                                "latestRevision": False, "tag": "prev"})  # fmt: skip
            predictor.update(latestCreatedRevision=revision, latestReadyRevision=revision,
                             traffic=traffic)  # fmt: skip
            if percent == 100:
                if previous:
                    predictor["previousRolledoutRevision"] = previous
                predictor["latestRolledoutRevision"] = revision
        status["canaryStatuses"] = [
            {"name": f"{name}-canary-{i}", "ready": True, "trafficPercent": c["trafficPercent"]}
            for i, c in enumerate(spec.get("canary") or [])
        ]
        status.update(
            url=url, address={"url": url}, components={"predictor": predictor},
            deploymentMode=mode, conditions=[_condition("Ready", "True", "", "")],
            modelStatus={"transitionStatus": "UpToDate",
                         "copies": {"failedCopies": 0, "totalCopies": 1},
                         "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"}},
        )  # fmt: skip
        return status


def _app_status(entry: dict[str, Any], status: str, deployments: str,
                message: str = "") -> dict[str, Any]:  # fmt: skip
    return {
        "status": status,
        "message": message,
        "serveDeploymentStatuses": {
            d["name"]: {"status": deployments, "message": ""}
            for d in entry.get("deployments") or []
        },
    }


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastTransitionTime": _now()}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _now() -> str:
    from testing.kube_api_server import now

    return now()
