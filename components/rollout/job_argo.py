"""The ``model-rollout`` WorkflowTemplate's steps around its ``resource`` templates.

On the cluster, Argo reads the RayService (a ``get`` resource step: its ``spec`` and
``resourceVersion``) and patches it (a ``patch`` resource step, waiting on the application's
status); the script steps here make the change from what was read and wait on the app's route.
The change is the kubernetes backend's own (``kube_rollout.RayServiceBackend``'s ``current`` and
``change`` on the object Argo read, through a read-only stand-in for the API): the placement, the
share left on the node, nothing KubeRay would answer with a new RayCluster, the pinned CRD. What
is applied is that one application's entry in the live ``serveConfigV2``, as a merge patch that
carries the ``resourceVersion`` it was computed from (someone writing in between: 409, the run
fails and its exit handler restores).

Argo may judge ``successCondition`` on the status KubeRay wrote for the old config, before it
has sent the new one to Ray: the gate first waits until the route (``rollout_serve_url`` + the
app's prefix) answers ``/v1/models`` with the new version, as the kubernetes backend does.

The apply step waits until KubeRay has observed the patched generation and the application is
RUNNING, and fails on DEPLOY_FAILED (``resource_conditions``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from components.rollout import history, rollout_flow
from components.rollout.application import RolloutRefused
from components.rollout.job_params import read_params
from components.rollout.job_steps import (
    check_gate,
    gate_step,
    job_settings,
    measure_side,
    memory_gb,
    model_ref,
    pending_start,
    record_promoted,
    record_rolled_back,
    record_started,
    rollout_request,
)
from components.rollout.local_rollout import answers, with_entry
from components.rollout.serve_config import dump_serve_config, parse_serve_config

if TYPE_CHECKING:
    from components.rollout.kube_rollout import RayServiceBackend
    from components.settings import Settings


# Argo reads a resource template's conditions as a Kubernetes label selector whose keys are
# gjson paths into the object: a key is at most 63 characters (IsQualifiedName).
CONDITION_KEY_MAX = 63
STATUS_PATH = "status.activeServiceStatus.applicationStatuses.{app}.status"
OBSERVED = "status.observedGeneration"


def resource_conditions(app: str, generation: int) -> tuple[str, str]:
    """The apply step's ``successCondition`` and ``failureCondition``: KubeRay has observed
    ``generation`` (what the patch makes: without it Argo would take the status KubeRay wrote
    for the old config, RUNNING, for the new one's) and the app's status is RUNNING; failed on
    DEPLOY_FAILED. When the app's status path is longer than a selector key may be
    (``embeddings``: 64 characters), only the generation: the gate's wait on the route, which
    always comes next, waits for the version."""
    observed = f"{OBSERVED} == {generation}"
    key = STATUS_PATH.format(app=app)
    if len(key) > CONDITION_KEY_MAX:
        return observed, ""
    return f"{observed}, {key} == RUNNING", f"{key} == DEPLOY_FAILED"


class ReadOnlyApi:
    """The RayService Argo read, served to a backend as the Kubernetes API would (reads only)."""

    server = "the RayService the workflow read"

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def get(self, kind: Any, name: str, namespace: str) -> dict[str, Any]:
        return json.loads(json.dumps(self.document))  # a copy, as each read is


def rayservice_document(spec: str, resource_version: str, settings: Settings) -> dict[str, Any]:
    """The RayService from the ``get`` step's outputs (its spec as JSON, its resourceVersion)."""
    from components.rollout.catalog import load_catalog
    from components.rollout.rayservice import API_VERSION

    try:
        body = json.loads(spec)
    except ValueError:
        body = None
    if not isinstance(body, dict) or "serveConfigV2" not in body:
        raise ValueError("the RayService read from the cluster has no spec.serveConfigV2")
    rs = load_catalog(settings.serving_catalog).rayservice
    metadata = {"name": rs.name, "namespace": rs.namespace, "resourceVersion": resource_version}
    return {"apiVersion": API_VERSION, "kind": "RayService", "metadata": metadata, "spec": body}


def _backend(app: str, document: dict[str, Any], settings: Settings) -> RayServiceBackend:
    from components.rollout.kube_rollout import RayServiceBackend

    return RayServiceBackend(settings, app, api=ReadOnlyApi(document))  # type: ignore[arg-type]


def _route(app: str, settings: Settings) -> str:
    from components.rollout.catalog import load_catalog

    prefix = load_catalog(settings.serving_catalog).app(app).route_prefix
    return settings.rollout_serve_url.rstrip("/") + prefix


def render_step(
    values: Mapping[str, Any], staged: Mapping[str, Any], spec: str, resource_version: str
) -> tuple[dict[str, Any], str]:
    """The plan (``changed``: whether the patch changes the spec), and the ``serveConfigV2``
    to patch in (as a JSON string, for the manifest); ``started`` recorded with the previous
    entry before anything is applied."""
    params = read_params(values)
    settings = job_settings()
    pending = rollout_flow.interrupted(history.read_history(params.store_name, settings))
    if pending is not None:
        raise RolloutRefused(
            "interrupted",
            f"the rollout of {pending['version']} of {params.store_name} was interrupted: run "
            f"llmw rollout status {params.app} --engine {pending.get('engine', 'ray-local')} "
            "first, which restores what served before it",
        )
    document = rayservice_document(spec, resource_version, settings)
    engine = _backend(params.app, document, settings)
    before = engine.current()
    entry = engine.change(
        model_ref(staged), memory_gb(params, staged, settings), rollout_request(params)
    )
    live = parse_serve_config(str(document["spec"]["serveConfigV2"]))
    plan = {
        "app": engine.app.name,
        "engine": "kubernetes",
        "target": "rayservice",
        "name": params.store_name,
        "version": params.version,
        "previous_version": engine.version(before),
        "previous_entry": before,
        "entry": entry,
    }
    text = dump_serve_config(with_entry(live, engine.app.name, entry))
    record_started(plan, settings)
    return {**plan, "changed": text != document["spec"]["serveConfigV2"]}, json.dumps(text)


def baseline_step(values: Mapping[str, Any], plan: Mapping[str, Any]) -> dict[str, Any]:
    """The old model's side of the gate, before the patch ({} when it does not answer)."""
    url = _route(plan["app"], job_settings())
    if plan.get("previous_entry") is None or not answers(url, plan.get("previous_version")):
        return {}
    return measure_side(values, url, "old")


def wait_answering(url: str, version: str | None, settings: Settings) -> float:
    """Seconds until ``url`` answers with ``version``; NotServing after the ready timeout."""

    def read() -> tuple[str, str]:
        if answers(url, version):
            return "serving", ""
        return "pending", f"{url} does not answer with version {version}"

    seconds = rollout_flow.poll(read, settings.rollout_ready_timeout_s, 1.0)
    return round(seconds, 2)


def argo_gate_step(
    values: Mapping[str, Any], plan: Mapping[str, Any], baseline: Mapping[str, Any]
) -> dict[str, Any]:
    """Wait until the route answers with the new version, then the gate."""
    settings = job_settings()
    url = _route(plan["app"], settings)
    wait_answering(url, plan["version"], settings)
    return gate_step(values, plan, baseline or None, url)


def promote_step(
    values: Mapping[str, Any], plan: Mapping[str, Any], report: Mapping[str, Any]
) -> dict[str, Any]:
    """``promoted`` when the gate passed (GateFailedError when not); the run's outcome."""
    check_gate(report)
    return record_promoted(values, plan, report, plan["entry"])


def restore_plan(
    values: Mapping[str, Any], status: str, spec: str, resource_version: str
) -> tuple[str, str]:
    """The exit handler's (action, serveConfigV2 as JSON): ``restore`` with the live config in
    which the app's entry is the one this run's ``started`` recorded (removed if none), when
    the run did not succeed and its rollout started; else ``none``."""
    settings = job_settings()
    started = None if status == "Succeeded" else pending_start(values, settings)
    if read_params(values).target != "rayservice" or started is None:
        return "none", json.dumps("")
    document = rayservice_document(spec, resource_version, settings)
    live = parse_serve_config(str(document["spec"]["serveConfigV2"]))
    restored = with_entry(live, started["app"], started.get("previous_entry"))
    return "restore", json.dumps(dump_serve_config(restored))


def restored_step(values: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """After the restore patch: wait until the old version answers; ``rolled_back``."""
    params = read_params(values)
    settings = job_settings()
    started = pending_start(values, settings)
    if started is None:
        return {"action": "none"}
    previous = started.get("previous_version")
    url = _route(params.app, settings)
    seconds = wait_answering(url, previous, settings) if started.get("previous_entry") else 0.0
    record_rolled_back(params.store_name, started, reason, settings)
    return {"action": "restored", "serving": previous, "restore_s": seconds}
