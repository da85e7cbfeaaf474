"""Reading a rollout's progress from ``status``: a RayService application, an InferenceService.

Each judge returns ``(state, why)``: ``serving``, ``failed`` or ``pending``. Neither counts a
status that its controller wrote for an older spec: ``status.observedGeneration`` must have
reached ``metadata.generation`` (the generation the write made) first.

- RayService (KubeRay v1.5.1): ``status.activeServiceStatus.applicationStatuses[app].status`` is
  Ray Serve's application status: ``RUNNING`` serves, ``DEPLOY_FAILED`` failed (its message says
  why), anything else (``DEPLOYING``, ``UNHEALTHY``, not there yet) is pending.
- InferenceService (KServe v0.20): the ``Ready`` condition ``True``, and the canary as the spec
  asks for it: Serverless, the latest ready revision routed ``canaryTrafficPercent`` (100 without
  one) in ``status.components.predictor.traffic``; RawDeployment, every ``status.canaryStatuses``
  ready with the spec's ``trafficPercent``. A model that failed to load (``modelStatus``:
  ``BlockedByFailedLoad``, ``InvalidSpec`` or target state ``FailedToLoad``) failed.
"""

from __future__ import annotations

from typing import Any

State = tuple[str, str]
FAILED_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")


def _generation(obj: dict[str, Any], at_least: int) -> str | None:
    """Why the status is not yet for the wanted generation, or None when it is."""
    wanted = max(int(obj.get("metadata", {}).get("generation") or 0), at_least)
    observed = int((obj.get("status") or {}).get("observedGeneration") or 0)
    if observed < wanted:
        return f"the controller has not observed generation {wanted} yet (it is at {observed})"
    return None


def rayservice_app(obj: dict[str, Any] | None, app: str, generation: int = 0) -> State:
    """Whether application ``app`` of the RayService serves."""
    if obj is None:
        return "failed", "the RayService is gone"
    stale = _generation(obj, generation)
    if stale:
        return "pending", stale
    active = (obj.get("status") or {}).get("activeServiceStatus") or {}
    state = (active.get("applicationStatuses") or {}).get(app)
    if state is None:
        return "pending", f"no status for application {app} yet"
    status, message = state.get("status"), state.get("message") or ""
    if status == "RUNNING":
        return "serving", "RUNNING"
    if status == "DEPLOY_FAILED":
        return "failed", f"{app}: DEPLOY_FAILED: {message[-800:]}"
    return "pending", f"{app}: {status} {message}".strip()


def rayservice_app_gone(obj: dict[str, Any] | None, app: str, generation: int = 0) -> State:
    """Whether application ``app`` is no longer in the RayService's status."""
    if obj is None:
        return "serving", "the RayService is gone"
    stale = _generation(obj, generation)
    if stale:
        return "pending", stale
    active = (obj.get("status") or {}).get("activeServiceStatus") or {}
    if app in (active.get("applicationStatuses") or {}):
        return "pending", f"application {app} is still there"
    return "serving", "gone"


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def _model_failure(status: dict[str, Any]) -> str | None:
    model = status.get("modelStatus") or {}
    target = (model.get("states") or {}).get("targetModelState")
    if model.get("transitionStatus") in FAILED_TRANSITIONS or target == "FailedToLoad":
        info = model.get("lastFailureInfo") or {}
        why = f"{info.get('reason', '')} {info.get('message', '')}".strip()
        return f"{model.get('transitionStatus')}: {why}"
    return None


def _canary(obj: dict[str, Any]) -> str | None:
    """Why the traffic is not yet as the spec asks, or None when it is."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    canaries = spec.get("canary") or []
    if canaries:
        states = status.get("canaryStatuses") or []
        wanted = [c.get("trafficPercent") for c in canaries]
        got = [s.get("trafficPercent") for s in states if s.get("ready")]
        return None if got == wanted else f"canary traffic {got}, wanted {wanted} (ready ones)"
    mode = (obj.get("metadata", {}).get("annotations") or {}).get(
        "serving.kserve.io/deploymentMode", status.get("deploymentMode")
    )
    if mode != "Serverless":
        return None
    predictor = (status.get("components") or {}).get("predictor") or {}
    percent = (spec.get("predictor") or {}).get("canaryTrafficPercent", 100)
    latest = predictor.get("latestReadyRevision")
    routed = [
        t.get("percent")
        for t in predictor.get("traffic") or []
        if t.get("latestRevision") and t.get("revisionName") == latest
    ]
    if latest and latest == predictor.get("latestCreatedRevision") and routed == [percent]:
        return None
    return f"latest ready revision {latest} routed {routed or 'no'} %, wanted {percent} %"


def inferenceservice(obj: dict[str, Any] | None, generation: int = 0) -> State:
    """Whether the InferenceService serves its spec, canary included."""
    if obj is None:
        return "pending", "no InferenceService yet"
    stale = _generation(obj, generation)
    if stale:
        return "pending", stale
    failure = _model_failure(obj.get("status") or {})
    if failure:
        return "failed", f"{obj['metadata'].get('name')}: {failure.strip()}"
    ready = condition(obj, "Ready")
    if ready.get("status") != "True":
        why = f"{ready.get('reason', '')} {ready.get('message', '')}".strip()
        return "pending", f"Ready is {ready.get('status', 'not set')}" + (f": {why}" if why else "")
    traffic = _canary(obj)
    return ("pending", traffic) if traffic else ("serving", "Ready")
