"""The kubernetes engine's KServe target: an application's model as an InferenceService.

An entry is what the rollout manages of the InferenceService named after the application: its
labels, annotations (the deployment mode, and ``llmw.io/model-version``) and spec; None when there
is none. ``change`` renders it (components/rollout/kserve.py: placement, the capacity a canary
needs); a RawDeployment canary keeps the live predictor as it is and adds ``spec.canary[]``. It is
created when absent, else written as a JSON merge patch with the ``resourceVersion`` it was
computed from; None deletes it. It serves when ``Ready`` is True for that generation with the
traffic the spec asks for (kube_status.py). Promotion takes a canary to all traffic: Serverless
drops ``canaryTrafficPercent``, RawDeployment makes the canary's predictor the predictor.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from components.rollout import kserve, kube_status, rollout_flow
from components.rollout.application import ModelRef, RolloutRefused, place_app
from components.rollout.catalog import load_catalog
from components.rollout.change import current_entry, current_fraction
from components.rollout.kube_api import INFERENCESERVICE, KubeApi, KubeError
from components.rollout.rayservice import render_rayservice
from components.rollout.rollout_flow import Entry

if TYPE_CHECKING:
    from components.rollout.plan import RolloutRequest
    from components.settings import Settings

VERSION_ANNOTATION = "llmw.io/model-version"
_MANAGED_ANNOTATIONS = (VERSION_ANNOTATION, kserve.MODE_ANNOTATION)


def managed(document: dict[str, Any]) -> dict[str, Any]:
    """The parts of an InferenceService a rollout records and writes."""
    meta = document.get("metadata") or {}
    return copy.deepcopy({
        "metadata": {"labels": meta.get("labels") or {},
                     "annotations": meta.get("annotations") or {}},
        "spec": document.get("spec") or {},
    })  # fmt: skip


def promoted(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry with its canary taken to all traffic; None when it has no canary."""
    result = copy.deepcopy(entry)
    spec = result["spec"]
    if "canaryTrafficPercent" in spec.get("predictor", {}):
        del spec["predictor"]["canaryTrafficPercent"]
        return result
    if spec.get("canary"):
        spec["predictor"] = spec.pop("canary")[0]["predictor"]
        return result
    return None


class KServeBackend:
    """The application's InferenceService as a rollout backend."""

    engine = "kubernetes"
    target = "kserve"
    errors: tuple[type[Exception], ...] = (KubeError,)

    def __init__(self, settings: Settings, app_name: str, api: KubeApi) -> None:
        self.settings = settings
        catalog = load_catalog(settings.serving_catalog)
        self.app = catalog.app(app_name)
        self.name, self.namespace = self.app.name, catalog.rayservice.namespace
        self.api = api
        self._live: dict[str, Any] | None = None
        self._generation = 0

    def _get(self) -> dict[str, Any] | None:
        return self.api.get(INFERENCESERVICE, self.name, self.namespace)

    def check(self) -> None:
        try:
            self._get()
        except KubeError as exc:
            raise RolloutRefused(
                "engine", f"the Kubernetes API ({self.api.server}) cannot be used: {exc}"
            ) from None

    def current(self) -> Entry:
        self._live = self._get()
        return None if self._live is None else managed(self._live)

    def change(self, model: ModelRef, memory_gb: float, request: RolloutRequest) -> Entry:
        from components.cluster.inventory import load_inventory

        catalog = load_catalog(self.settings.serving_catalog)
        inventory = load_inventory(self.settings.cluster_inventory)
        entry = current_entry(render_rayservice(self.settings), self.app.name)
        fraction = request.gpu_fraction or current_fraction(entry, self.app)
        placement = place_app(self.app, memory_gb, inventory, fraction, request.node)
        mode = request.kserve_mode or self.settings.kserve_deployment_mode
        kserve.check_capacity(placement, inventory, mode, request.canary)
        live = self._live
        self._check_live(live, mode, request.canary)
        stable = None
        if live is not None:
            stable = ModelRef(str(live["spec"]["predictor"].get("model", {}).get("storageUri")))
        document = kserve.render_inferenceservice(
            self.app, model, placement, catalog, self.settings, mode, request.canary, stable
        )
        if live is not None and document["spec"].get("canary"):
            document["spec"]["predictor"] = copy.deepcopy(live["spec"]["predictor"])
        document["metadata"]["annotations"][VERSION_ANNOTATION] = request.version
        kserve.validate(document, self.settings)
        return managed(document)

    def _check_live(self, live: dict[str, Any] | None, mode: str, canary: int | None) -> None:
        where = f"InferenceService {self.namespace}/{self.name}"
        if live is None and canary is not None:
            raise RolloutRefused(
                "canary",
                f"a canary shares traffic with the model served now, and there is no {where}: "
                "roll the first model out without --canary",
            )
        annotations = (live or {}).get("metadata", {}).get("annotations") or {}
        running = annotations.get(kserve.MODE_ANNOTATION)
        if live is not None and running not in (None, mode):
            raise RolloutRefused(
                "kserve_mode",
                f"{where} runs as {running}; KServe does not change the deployment mode of an "
                f"InferenceService in place (asked: {mode})",
            )

    def version(self, entry: Entry) -> str | None:
        if entry is None:
            return None
        return (entry.get("metadata", {}).get("annotations") or {}).get(VERSION_ANNOTATION)

    def route(self) -> str:
        return self.settings.rollout_kserve_url.format(name=self.name, namespace=self.namespace)

    def serving(self) -> bool:
        return kube_status.inferenceservice(self._get())[0] == "serving"

    def _document(self, entry: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any]:
        """The whole object ``entry`` makes of ``live``: others' labels and annotations kept."""
        meta = (live or {}).get("metadata") or {}
        annotations = {
            k: v for k, v in (meta.get("annotations") or {}).items()
            if k not in _MANAGED_ANNOTATIONS
        }  # fmt: skip
        return {
            "apiVersion": kserve.API_VERSION,
            "kind": "InferenceService",
            "metadata": {
                **meta,
                "name": self.name,
                "namespace": self.namespace,
                "labels": {**(meta.get("labels") or {}), **entry["metadata"]["labels"]},
                "annotations": {**annotations, **entry["metadata"]["annotations"]},
            },
            "spec": copy.deepcopy(entry["spec"]),
        }

    def apply(self, entry: Entry) -> None:
        if entry is None:
            self.api.delete(INFERENCESERVICE, self.name, self.namespace)
            self._generation = 0
            return
        live = self._get()
        wanted = self._document(entry, live)
        kserve.validate({**wanted, "metadata": {k: wanted["metadata"][k] for k in (
            "name", "namespace", "labels", "annotations")}}, self.settings)  # fmt: skip
        if live is None:
            written = self.api.create(wanted)
        else:
            written = self.api.update(
                INFERENCESERVICE, self.name, self.namespace,
                lambda obj: {**self._document(entry, obj), "status": obj.get("status")},
            )  # fmt: skip
        self._generation = int(written["metadata"].get("generation") or 0)

    def wait_serving(self, entry: Entry, timeout_s: float) -> float:
        def read() -> tuple[str, str]:
            obj = self._get()
            if entry is None:
                return ("serving", "gone") if obj is None else ("pending", "still there")
            return kube_status.inferenceservice(obj, self._generation)

        return rollout_flow.poll(read, timeout_s, self.settings.kube_poll_interval_s)

    def promote(self, entry: Entry, timeout_s: float) -> Entry:
        assert entry is not None
        after = promoted(entry)
        if after is None:
            return entry
        self.apply(after)
        self.wait_serving(after, timeout_s)
        return after

    def describe(self) -> dict[str, Any]:
        try:
            obj = self._get()
        except KubeError as exc:
            return {"reachable": False, "error": str(exc)}
        state, why = kube_status.inferenceservice(obj)
        return {
            "reachable": True,
            "object": f"inferenceservices/{self.name} in {self.namespace}" if obj else None,
            "kube": {"status": state, "message": why,
                     "version": self.version(managed(obj)) if obj else None},
        }  # fmt: skip
