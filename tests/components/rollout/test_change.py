"""The change a rollout makes: one application's serveConfigV2 entry, every other byte as it was."""

from __future__ import annotations

import copy
import difflib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.inventory import load_inventory
from components.rollout.application import ModelRef, RolloutRefused
from components.rollout.change import roll_out
from components.rollout.rayservice import render_rayservice, to_yaml
from components.rollout.staging import stage_model
from tests.components.rollout.conftest import inventory_with, node_of

DIGEST = "ab" * 32


@pytest.fixture(scope="module")
def current(shipped: Any) -> dict[str, Any]:
    return render_rayservice(shipped)


def staged(uri: str = "s3://models/embeddings/v2/") -> ModelRef:
    return ModelRef(uri, "v2", DIGEST)


def apps(document: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(document["spec"]["serveConfigV2"])
    return {a["name"]: a for a in config["applications"]}


def changed_lines(before: str, after: str) -> list[int]:
    """The 0-based line numbers of ``before`` that a diff to ``after`` replaces or deletes, and
    where it inserts."""
    matcher = difflib.SequenceMatcher(a=before.splitlines(), b=after.splitlines(), autojunk=False)
    lines: list[int] = []
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag != "equal":
            lines.extend(range(i1, max(i2, i1 + 1)))
    return lines


def block_of(text: str, app: str) -> range:
    """The lines of ``app``'s entry in a YAML text: its ``- name:`` line and those under it."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == f"- name: {app}")
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines):
        depth = len(lines[end]) - len(lines[end].lstrip())
        if depth < indent or (depth == indent and lines[end].lstrip().startswith("- ")):
            break
        end += 1
    return range(start, end)


def test_one_application_changes_and_every_other_byte_stays(
    current: dict[str, Any], catalog: Any, inventory: Any, tmp_path: Path, shipped: Any
) -> None:
    model = tmp_path / "bge-v2"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"\x07" * 1000)
    settings = shipped.model_copy(update={"model_store_uri": str(tmp_path / "store")})
    result = stage_model(str(model), "embeddings", "v2", settings)
    ref = ModelRef(result.uri, "v2", result.manifest.digest)
    change = roll_out(current, "embeddings", ref, 2.0, catalog, inventory)
    before, after = to_yaml(change.before), to_yaml(change.after)
    assert change.before is current and to_yaml(current) == before  # the input is untouched
    # Outside serveConfigV2: equal as data, and as text (the diff stays within the block).
    rest = {k: v for k, v in change.after["spec"].items() if k != "serveConfigV2"}
    assert rest == {k: v for k, v in current["spec"].items() if k != "serveConfigV2"}
    assert {k: v for k, v in change.after.items() if k != "spec"} == {
        k: v for k, v in current.items() if k != "spec"
    }
    lines = changed_lines(before, after)
    assert lines and set(lines) <= set(block_of(before, "embeddings"))
    inner_before = current["spec"]["serveConfigV2"]
    inner_after = change.after["spec"]["serveConfigV2"]
    assert set(changed_lines(inner_before, inner_after)) <= set(
        block_of(inner_before, "embeddings")
    )
    old, new = apps(current), apps(change.after)
    assert {k: v for k, v in old.items() if k != "embeddings"} == {
        k: v for k, v in new.items() if k != "embeddings"
    }
    assert new["embeddings"]["args"] == {
        "model": result.uri,
        "served_model_name": "embeddings",
        "model_version": "v2",
        "model_digest": result.manifest.digest,
    }
    assert new["embeddings"]["runtime_env"] == {
        "env_vars": {"HSA_OVERRIDE_GFX_VERSION": "10.3.0", "LLMW_EMBEDDING_BACKEND": "torch"}
    }
    assert change.placement.node == "drizzt" and not change.reformatted


def test_rolling_out_what_serves_now_changes_nothing(
    current: dict[str, Any], catalog: Any, inventory: Any
) -> None:
    for app in catalog.apps:
        change = roll_out(current, app.name, ModelRef(app.model), 0.0, catalog, inventory)
        assert to_yaml(change.after) == to_yaml(current)


@pytest.fixture(scope="module")
def wider(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped inventory plus jarlaxle (an Intel Arc) and volo (an RTX 2070 for anything)."""

    def add(data: dict[str, Any]) -> None:
        for name, like in (("jarlaxle", "danilo"), ("volo", "elminster")):
            node = copy.deepcopy(node_of(data, like))
            node["name"] = name
            node["labels"]["kubernetes.io/hostname"] = name
            data["nodes"].append(node)

    return inventory_with(tmp_path_factory.mktemp("wider"), add)


def test_moving_an_application_changes_its_node_resource_and_env(
    wider: Path, catalog: Any, shipped: Any
) -> None:
    inventory = load_inventory(wider)
    current = render_rayservice(shipped.model_copy(update={"cluster_inventory": wider}))
    change = roll_out(current, "embeddings", staged(), 1.0, catalog, inventory, node="jarlaxle")
    entry = apps(change.after)["embeddings"]
    # HSA_OVERRIDE_GFX_VERSION is drizzt's, not the Arc's; the Arc runs embeddings on OpenVINO.
    assert entry["runtime_env"] == {"env_vars": {"LLMW_EMBEDDING_BACKEND": "openvino"}}
    options = entry["deployments"][0]["ray_actor_options"]
    assert options == {"num_cpus": 1, "num_gpus": 0.8, "resources": {"gpu-node-jarlaxle": 0.01}}
    back = roll_out(change.after, "embeddings", staged(), 1.0, catalog, inventory, node="drizzt")
    assert apps(back.after)["embeddings"]["runtime_env"] == {
        "env_vars": {"HSA_OVERRIDE_GFX_VERSION": "10.3.0", "LLMW_EMBEDDING_BACKEND": "torch"}
    }
    shares = roll_out(current, "whisper", staged(), 1.0, catalog, inventory, gpu_fraction=0.4)
    assert apps(shares.after)["whisper"]["deployments"][0]["ray_actor_options"]["num_gpus"] == 0.4


def test_a_node_the_raycluster_lacks_or_runs_another_image_on_is_a_new_cluster(
    wider: Path, catalog: Any, current: dict[str, Any]
) -> None:
    inventory = load_inventory(wider)  # knows jarlaxle; the rendered RayService doesn't
    with pytest.raises(RolloutRefused, match="no worker group") as refused:
        roll_out(current, "reranker", staged(), 1.0, catalog, inventory, node="jarlaxle")
    assert refused.value.reason == "new_cluster"
    assert "start a new RayCluster" in refused.value.message
    with_volo = render_rayservice_for(wider)
    with pytest.raises(
        RolloutRefused,
        match=r"needs the image .*vllm-cuda, but worker group gpu-volo runs .*0.1.0-cuda",
    ):
        roll_out(with_volo, "llm", staged(), 1.0, catalog, inventory, node="volo")


def render_rayservice_for(inventory_path: Path) -> dict[str, Any]:
    from components.settings import Settings

    return render_rayservice(Settings(cluster_inventory=inventory_path))


@pytest.mark.parametrize(
    ("app", "memory", "pin", "reason", "says"),
    [
        ("llm", 70.0, None, "placement", "no GPU has 73.684 GB for vllm"),
        ("llm", 1.0, "drizzt", "placement", "vllm does not support drizzt's AMD Radeon 680M"),
        ("whisper", 5.0, None, "placement", "no GPU has 10 GB for whisper"),
        ("embeddings", 11.0, None, "placement", "reranker (0.8) already hold a share"),
        ("reranker", 1.0, "storm", "placement", "it has no GPU (a control-plane node)"),
        ("chat", 1.0, None, "unknown_app", "unknown app 'chat'"),
    ],
)
def test_refusals_name_the_reason(
    current: dict[str, Any],
    catalog: Any,
    inventory: Any,
    app: str,
    memory: float,
    pin: str | None,
    reason: str,
    says: str,
) -> None:
    with pytest.raises(RolloutRefused) as refused:
        roll_out(current, app, staged(), memory, catalog, inventory, node=pin)
    assert refused.value.reason == reason
    assert says in refused.value.message


def test_vendor_support_comes_from_the_inventory(
    current: dict[str, Any], catalog: Any, tmp_path: Path
) -> None:
    def no_vllm(data: dict[str, Any]) -> None:
        for name in ("khelben", "elminster"):
            gpu = node_of(data, name)["gpu"]
            gpu["frameworks"].remove("vllm")
            gpu["unsupported"] = {"vllm": "no vLLM build here"}

    inventory = load_inventory(inventory_with(tmp_path, no_vllm))
    with pytest.raises(RolloutRefused) as refused:
        roll_out(current, "llm", staged(), 1.0, catalog, inventory)
    message = refused.value.message
    assert message.startswith("llm: cannot place vllm: ")
    for gpu in ("elminster's NVIDIA GeForce RTX 2070", "khelben's AMD Strix Halo", "drizzt's"):
        assert f"vllm does not support {gpu}" in message
    assert "no vLLM build here" in message


def test_an_application_missing_from_the_serve_config_is_unknown(
    current: dict[str, Any], catalog: Any, inventory: Any
) -> None:
    config = yaml.safe_load(current["spec"]["serveConfigV2"])
    config["applications"] = [a for a in config["applications"] if a["name"] != "tts"]
    without = copy.deepcopy(current)
    without["spec"]["serveConfigV2"] = yaml.safe_dump(config)
    with pytest.raises(RolloutRefused, match="has no application 'tts'") as refused:
        roll_out(without, "tts", staged(), 1.0, catalog, inventory)
    assert refused.value.reason == "unknown_app"


def test_a_hand_formatted_serve_config_keeps_every_other_application(
    current: dict[str, Any], catalog: Any, inventory: Any
) -> None:
    config = yaml.safe_load(current["spec"]["serveConfigV2"])
    config["applications"][0]["deployments"][0]["max_ongoing_requests"] = 8
    hand = copy.deepcopy(current)
    hand["spec"]["serveConfigV2"] = json.dumps(config, indent=1)  # JSON is YAML too
    change = roll_out(hand, "reranker", staged(), 1.0, catalog, inventory)
    assert change.reformatted
    old, new = apps(hand), apps(change.after)
    assert {k: v for k, v in old.items() if k != "reranker"} == {
        k: v for k, v in new.items() if k != "reranker"
    }
    assert new["llm"]["deployments"][0]["max_ongoing_requests"] == 8


def test_whatever_builds_the_new_object_a_cluster_change_is_refused(
    current: dict[str, Any], catalog: Any, inventory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from components.rollout import change as change_module

    def leaky_copy(document: Any) -> Any:  # a slip that touches the RayCluster too
        copied = copy.deepcopy(document)
        if isinstance(copied, dict) and "spec" in copied:
            groups = copied["spec"]["rayClusterConfig"]["workerGroupSpecs"]
            groups[2]["template"]["spec"]["containers"][0]["image"] += "-new"
        return copied

    monkeypatch.setattr(change_module, "copy", SimpleNamespace(deepcopy=leaky_copy))
    with pytest.raises(RolloutRefused, match=r"workerGroupSpecs\[2\]\.template") as refused:
        roll_out(current, "embeddings", staged(), 1.0, catalog, inventory)
    assert refused.value.reason == "new_cluster"
