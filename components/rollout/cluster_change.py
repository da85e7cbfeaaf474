"""What KubeRay v1.5.1 does with a changed RayService, and which changes a rollout refuses.

KubeRay's RayService controller (ray-operator/controllers/ray/rayservice_controller.go at v1.5.1:
``shouldPrepareNewCluster``, ``shouldUpdateCluster``, ``isClusterSpecHashEqual``,
``generateHashWithoutReplicasAndWorkersToDelete``, ``isZeroDowntimeUpgradeEnabled``):

- a changed ``spec.serveConfigV2`` is sent to the running cluster's dashboard
  (``PUT /api/serve/applications/``): applied in place, no new pod;
- ``spec.rayClusterConfig`` is compared by a hash that leaves out each worker group's
  ``replicas``, ``minReplicas``, ``maxReplicas`` and ``scaleStrategy.workersToDelete``. The same
  hash: nothing happens to the cluster (those four fields are not applied either). The same hash
  once worker groups added at the end are left out: the running cluster is updated in place.
  Anything else: a new RayCluster when zero-downtime upgrade is on (``upgradeStrategy.type``
  ``NewCluster``, ``NewClusterWithIncrementalUpgrade`` behind its feature gate, or no type and
  the operator's ``ENABLE_ZERO_DOWNTIME`` not ``false``); with type ``None`` nothing is created and
  the change is not applied to the running cluster.

A new RayCluster needs a second copy of every GPU, and this cluster has one of each kind: it
could never schedule. So a rollout changes ``serveConfigV2`` alone, and ``cluster_change``
refuses anything else, naming the KubeRay rule that applies.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from components.rollout.application import RolloutRefused

ClusterAction = Literal["none", "update", "new_cluster", "ignored"]
_MUTED = ("replicas", "minReplicas", "maxReplicas")
_ABSENT = object()


def _hashed_view(cluster: dict[str, Any]) -> dict[str, Any]:
    """``rayClusterConfig`` as KubeRay hashes it: each worker group's scale fields muted."""
    view = copy.deepcopy(cluster)
    for group in view.get("workerGroupSpecs") or []:
        for key in _MUTED:
            group.pop(key, None)
        strategy = group.get("scaleStrategy")
        if isinstance(strategy, dict):
            strategy.pop("workersToDelete", None)
            if not strategy:
                group.pop("scaleStrategy")
    return view


def zero_downtime_upgrade(spec: dict[str, Any]) -> bool:
    """Whether KubeRay would answer a cluster change with a new RayCluster (assuming the
    operator's defaults: ENABLE_ZERO_DOWNTIME unset, the incremental-upgrade gate as set)."""
    kind = (spec.get("upgradeStrategy") or {}).get("type")
    return kind is None or kind in ("NewCluster", "NewClusterWithIncrementalUpgrade")


def cluster_action(old: dict[str, Any], new: dict[str, Any]) -> ClusterAction:
    """What KubeRay v1.5.1 does to the running RayCluster when ``old``'s spec becomes ``new``'s."""
    before = _hashed_view(old["spec"].get("rayClusterConfig") or {})
    after = _hashed_view(new["spec"].get("rayClusterConfig") or {})
    if before == after:
        return "none"
    old_groups = before.get("workerGroupSpecs") or []
    new_groups = after.get("workerGroupSpecs") or []
    if len(new_groups) > len(old_groups):
        trimmed = {**after, "workerGroupSpecs": new_groups[: len(old_groups)]}
        if trimmed == before:
            return "update"
    return "new_cluster" if zero_downtime_upgrade(new["spec"]) else "ignored"


def _changed_paths(old: Any, new: Any, path: str) -> list[str]:
    """The first differing fields between two documents (paths like ``spec.rayClusterConfig``)."""
    if isinstance(old, dict) and isinstance(new, dict):
        paths: list[str] = []
        for key in list(old) + [k for k in new if k not in old]:
            if old.get(key, _ABSENT) != new.get(key, _ABSENT):
                paths.extend(_changed_paths(old.get(key), new.get(key), f"{path}.{key}"))
        return paths
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            p
            for i, (a, b) in enumerate(zip(old, new, strict=True))
            if a != b
            for p in _changed_paths(a, b, f"{path}[{i}]")
        ]
    return [path.lstrip(".")]


def cluster_change(old: dict[str, Any], new: dict[str, Any]) -> None:
    """RolloutRefused unless ``new``'s spec differs from ``old``'s in ``serveConfigV2`` alone.

    The object must stay the same one (apiVersion, kind, name, namespace); its labels and
    annotations may change (KubeRay hashes neither).
    """
    for key in ("apiVersion", "kind"):
        if old.get(key) != new.get(key):
            raise RolloutRefused("new_cluster", f"{key} changed: that is another object")
    for key in ("name", "namespace"):
        if old.get("metadata", {}).get(key) != new.get("metadata", {}).get(key):
            raise RolloutRefused("new_cluster", f"metadata.{key} changed: that is another object")
    old_spec = {k: v for k, v in old["spec"].items() if k != "serveConfigV2"}
    new_spec = {k: v for k, v in new["spec"].items() if k != "serveConfigV2"}
    if old_spec == new_spec:
        return
    where = ", ".join(_changed_paths(old_spec, new_spec, "spec")[:5])
    action = cluster_action(old, new)
    if action == "new_cluster":
        raise RolloutRefused(
            "new_cluster",
            f"{where} changed: KubeRay v1.5.1 would start a new RayCluster (upgradeStrategy "
            f"{_strategy(new)}), which needs a second copy of every GPU and can never schedule "
            "here; a rollout changes spec.serveConfigV2 only",
        )
    if action == "ignored":
        raise RolloutRefused(
            "new_cluster",
            f"{where} changed: with upgradeStrategy None KubeRay v1.5.1 applies such a change "
            "only by replacing the RayCluster, which it will not do; a rollout changes "
            "spec.serveConfigV2 only",
        )
    raise RolloutRefused(
        "new_cluster",
        f"{where} changed outside spec.serveConfigV2 (KubeRay v1.5.1: "
        f"{'updates the running cluster' if action == 'update' else 'no effect on the cluster'}"
        "); a rollout changes spec.serveConfigV2 only",
    )


def _strategy(doc: dict[str, Any]) -> str:
    kind = (doc["spec"].get("upgradeStrategy") or {}).get("type")
    return str(kind) if kind else "unset, so NewCluster"
