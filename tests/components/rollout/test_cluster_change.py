"""KubeRay v1.5.1's rules for a changed RayService; anything but serveConfigV2 is refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.rollout.application import RolloutRefused
from components.rollout.cluster_change import cluster_action, cluster_change
from components.rollout.rayservice import render_rayservice


@pytest.fixture(scope="module")
def rendered(shipped: Any) -> dict[str, Any]:
    return render_rayservice(shipped)


def changed(document: dict[str, Any], edit: Any) -> dict[str, Any]:
    new = copy.deepcopy(document)
    edit(new)
    return new


def worker(document: dict[str, Any], index: int = 0) -> dict[str, Any]:
    group: dict[str, Any] = document["spec"]["rayClusterConfig"]["workerGroupSpecs"][index]
    return group


def container(document: dict[str, Any], index: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = worker(document, index)["template"]["spec"]["containers"][0]
    return spec


def set_image(doc: dict[str, Any]) -> None:
    container(doc)["image"] = "ghcr.io/daviestechlabs/llm-workflows:0.2.0-cuda"


def without_strategy(doc: dict[str, Any]) -> None:
    doc["spec"].pop("upgradeStrategy")


def test_a_serve_config_or_label_change_is_in_place(rendered: dict[str, Any]) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["spec"]["serveConfigV2"] = doc["spec"]["serveConfigV2"].replace("0.95", "0.9")
        doc["metadata"]["labels"]["llmw/rollout"] = "llm-v2"

    after = changed(rendered, edit)
    assert cluster_action(rendered, after) == "none"
    cluster_change(rendered, after)  # no refusal


def test_kuberay_hashes_the_cluster_without_the_scale_fields(rendered: dict[str, Any]) -> None:
    def scale(doc: dict[str, Any]) -> None:
        group = worker(doc)
        group.update(replicas=0, minReplicas=0, maxReplicas=3)
        group["scaleStrategy"] = {"workersToDelete": ["pod-a"]}

    assert cluster_action(rendered, changed(rendered, scale)) == "none"

    def append_group(doc: dict[str, Any]) -> None:
        extra = copy.deepcopy(worker(doc, 3))
        extra["groupName"] = "gpu-extra"
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"].append(extra)

    assert cluster_action(rendered, changed(rendered, append_group)) == "update"

    def insert_group(doc: dict[str, Any]) -> None:
        extra = copy.deepcopy(worker(doc, 3))
        extra["groupName"] = "gpu-extra"
        doc["spec"]["rayClusterConfig"]["workerGroupSpecs"].insert(0, extra)

    assert cluster_action(rendered, changed(rendered, insert_group)) == "ignored"


@pytest.mark.parametrize(
    ("strategy", "action"),
    [
        ("None", "ignored"),
        ("NewCluster", "new_cluster"),
        ("NewClusterWithIncrementalUpgrade", "new_cluster"),
        (None, "new_cluster"),  # unset: ENABLE_ZERO_DOWNTIME's default, on
    ],
)
def test_an_image_change_and_the_upgrade_strategy(
    rendered: dict[str, Any], strategy: str | None, action: str
) -> None:
    def edit(doc: dict[str, Any]) -> None:
        set_image(doc)
        if strategy is None:
            without_strategy(doc)
        else:
            doc["spec"]["upgradeStrategy"] = {"type": strategy}

    after = changed(rendered, edit)
    assert cluster_action(rendered, after) == action


def test_a_change_that_would_start_a_new_raycluster_is_refused(rendered: dict[str, Any]) -> None:
    def edit(doc: dict[str, Any]) -> None:
        set_image(doc)
        without_strategy(doc)

    with pytest.raises(RolloutRefused) as refused:
        cluster_change(rendered, changed(rendered, edit))
    assert refused.value.reason == "new_cluster"
    message = refused.value.message
    assert "spec.upgradeStrategy" in message
    assert "rayClusterConfig.workerGroupSpecs[0].template.spec.containers[0].image" in message
    assert "would start a new RayCluster (upgradeStrategy unset, so NewCluster)" in message
    assert "second copy of every GPU" in message


def test_with_upgrade_strategy_none_a_cluster_change_is_refused_too(
    rendered: dict[str, Any],
) -> None:
    def resources(doc: dict[str, Any]) -> None:
        container(doc, 2)["resources"]["limits"]["memory"] = "32Gi"

    with pytest.raises(RolloutRefused, match="with upgradeStrategy None") as refused:
        cluster_change(rendered, changed(rendered, resources))
    assert refused.value.reason == "new_cluster"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: worker(d).update(replicas=0), "no effect on the cluster"),
        (
            lambda d: d["spec"]["rayClusterConfig"]["workerGroupSpecs"].append(
                copy.deepcopy(worker(d))
            ),
            "updates the running cluster",
        ),
        (lambda d: d["spec"].update(serviceUnhealthySecondThreshold=60), "spec.serviceUnhealthy"),
        (lambda d: d["metadata"].update(name="other"), "metadata.name changed"),
    ],
)
def test_everything_outside_the_serve_config_is_refused(
    rendered: dict[str, Any], edit: Any, says: str
) -> None:
    with pytest.raises(RolloutRefused, match=says):
        cluster_change(rendered, changed(rendered, edit))
