"""The cluster inventory and GPU placement: the four GPU nodes, the CPU path, every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from components.cluster.inventory import (
    ClusterInventory,
    InventoryError,
    default_inventory_path,
    load_inventory,
)
from components.cluster.placement import GpuNeed, Placement, PlacementError, gpus_like, place


@pytest.fixture(scope="module")
def inventory() -> ClusterInventory:
    return load_inventory()


def shipped() -> dict:
    return yaml.safe_load(default_inventory_path().read_text())


def write(tmp_path: Path, data: dict | str) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


# The four GPU nodes.


def test_vllm_goes_to_khelben_with_its_toleration(inventory: ClusterInventory) -> None:
    placement = place(GpuNeed(framework="vllm", gpu_fraction=0.95), inventory)
    assert placement.node == "khelben"
    assert placement.node_selector == {"kubernetes.io/hostname": "khelben"}
    assert (placement.resource, placement.count) == ("amd.com/gpu", 1)
    assert placement.resource_limits() == {"amd.com/gpu": 1}
    assert placement.gpu_fraction == 0.95  # kept, not requested: the count is whole
    assert placement.tolerations == [
        {"key": "dedicated", "operator": "Equal", "value": "vllm", "effect": "NoSchedule"}
    ]
    assert (placement.vendor, placement.architecture) == ("amd", "gfx1151")
    assert placement.env == {}
    assert placement.image.startswith("rocm/vllm:")


def test_embeddings_go_to_drizzt_with_the_gfx_override(inventory: ClusterInventory) -> None:
    placement = place(GpuNeed(framework="sentence-transformers", gpu_fraction=0.8), inventory)
    assert placement.node == "drizzt"
    # Both AMD nodes expose amd.com/gpu: only the node selector tells them apart.
    assert placement.node_selector == {"kubernetes.io/hostname": "drizzt"}
    assert (placement.resource, placement.count) == ("amd.com/gpu", 1)
    assert placement.env == {
        "HSA_OVERRIDE_GFX_VERSION": "10.3.0",
        "LLMW_EMBEDDING_BACKEND": "torch",
    }
    assert placement.tolerations == []
    assert placement.gpu_fraction == 0.8
    assert (placement.accelerator, placement.accelerator_type) == (
        "AMD Radeon 680M",
        "AMD-Radeon-680M",
    )
    assert placement.image == "ghcr.io/daviestechlabs/llm-workflows:0.1.0-rocm"


@pytest.mark.parametrize(
    ("need", "backend"),
    [
        (GpuNeed(framework="sentence-transformers"), "torch"),  # drizzt, ROCm
        (GpuNeed(framework="sentence-transformers", node="danilo"), "openvino"),  # Intel Arc
        (GpuNeed(framework="sentence-transformers", vendor="nvidia"), "torch"),  # CUDA
        (GpuNeed(framework="sentence-transformers", gpu=False), "auto"),
        (GpuNeed(framework="vllm"), None),  # not an embedding step: no backend
        (GpuNeed(framework="reranker"), None),
    ],
)
def test_embedding_steps_get_their_stacks_backend(
    inventory: ClusterInventory, need: GpuNeed, backend: str | None
) -> None:
    placement = place(need, inventory)
    assert placement.embedding_backend == backend
    assert placement.env.get("LLMW_EMBEDDING_BACKEND") == backend


def test_an_unknown_embedding_backend_is_refused(tmp_path: Path) -> None:
    data = shipped()
    data["embedding_backends"]["xpu"] = "tensorrt"
    with pytest.raises(InventoryError, match=r"embedding_backends\.xpu"):
        load_inventory(write(tmp_path, data))


def test_nvidia_work_goes_to_elminster(inventory: ClusterInventory) -> None:
    placement = place(GpuNeed(framework="torch", vendor="NVIDIA"), inventory)
    assert placement.node == "elminster"
    assert placement.node_selector == {"kubernetes.io/hostname": "elminster"}
    assert (placement.resource, placement.count) == ("nvidia.com/gpu", 1)
    assert (placement.vendor, placement.architecture) == ("nvidia", "sm_75")
    assert placement.env == {}
    assert placement.image.startswith("pytorch/pytorch:") and "cuda" in placement.image
    assert place(GpuNeed(framework="whisper", gpu_fraction=0.5), inventory).node == "elminster"
    assert place(GpuNeed(framework="torch", architecture="turing"), inventory).node == "elminster"


def test_the_reranker_goes_to_danilo(inventory: ClusterInventory) -> None:
    placement = place(GpuNeed(framework="reranker", gpu_fraction=0.8), inventory)
    assert placement.node == "danilo"
    assert placement.node_selector == {"kubernetes.io/hostname": "danilo"}
    assert (placement.resource, placement.count) == ("gpu.intel.com/i915", 1)
    assert placement.vendor == "intel"
    assert placement.image.endswith("-xpu")
    pinned = place(GpuNeed(framework="torch", node="danilo"), inventory)
    assert pinned.image.startswith("intel/intel-extension-for-pytorch:") and "xpu" in pinned.image


def test_the_choice_is_deterministic(inventory: ClusterInventory) -> None:
    # No default node for torch: the least memory that fits, then the name. khelben is
    # dedicated to vLLM, so it is never chosen for torch unless pinned.
    assert place(GpuNeed(framework="torch"), inventory).node == "elminster"
    assert place(GpuNeed(framework="torch", min_memory_gb=10), inventory).node == "drizzt"
    assert place(GpuNeed(framework="torch", min_memory_gb=14), inventory).node == "danilo"
    assert place(GpuNeed(framework="torch", vendor="amd"), inventory).node == "drizzt"
    # The default node wins over a smaller GPU that also fits.
    assert place(GpuNeed(framework="sentence-transformers", min_memory_gb=4), inventory).node == (
        "drizzt"
    )
    first, *others = [place(GpuNeed(framework="transformers"), inventory) for _ in range(3)]
    assert all(other == first for other in others)


def test_a_pinned_dedicated_node_is_shared_with_its_toleration(
    inventory: ClusterInventory,
) -> None:
    placement = place(GpuNeed(framework="torch", node="khelben", min_memory_gb=20), inventory)
    assert placement.node == "khelben"
    assert placement.tolerations[0]["key"] == "dedicated"
    assert "rocm/pytorch" in placement.image


def test_there_is_one_gpu_of_each_kind(inventory: ClusterInventory) -> None:
    for framework in ("vllm", "sentence-transformers", "reranker", "whisper"):
        assert gpus_like(place(GpuNeed(framework=framework), inventory), inventory) == 1
    assert inventory.gpus_of_kind("AMD Strix Halo") == 1
    assert gpus_like(place(GpuNeed(framework="torch", gpu=False), inventory), inventory) == 0


# The CPU placement.


def test_a_step_without_gpu_gets_the_cpu_image_and_no_resource(
    inventory: ClusterInventory,
) -> None:
    placement = place(GpuNeed(framework="sentence-transformers", gpu=False), inventory)
    assert (placement.node, placement.resource, placement.count) == (None, None, 0)
    assert (placement.node_selector, placement.tolerations) == ({}, [])
    assert placement.env == {"LLMW_EMBEDDING_BACKEND": "auto"}  # the gated default on a CPU
    assert placement.resource_limits() == {}
    assert placement.vendor == "cpu"
    assert placement.image == "ghcr.io/daviestechlabs/llm-workflows:0.1.0"
    pinned = place(GpuNeed(framework="transformers", gpu=False, node="drizzt"), inventory)
    assert (pinned.node_selector, pinned.resource) == ({"kubernetes.io/hostname": "drizzt"}, None)


def test_cpu_placement_refusals(inventory: ClusterInventory) -> None:
    with pytest.raises(PlacementError, match="no cpu image for vllm"):
        place(GpuNeed(framework="vllm", gpu=False), inventory)
    with pytest.raises(PlacementError, match="'storm' is a control-plane node"):
        place(GpuNeed(framework="torch", gpu=False, node="storm"), inventory)
    with pytest.raises(ValidationError, match="gpu=False asks for no GPU, yet sets vendor"):
        GpuNeed(framework="torch", gpu=False, vendor="amd")


# Refusals.


@pytest.mark.parametrize(
    ("need", "reason"),
    [
        (
            GpuNeed(framework="vllm", node="drizzt"),
            r"vllm does not support drizzt's AMD Radeon 680M \(gfx1035\)",
        ),
        (
            GpuNeed(framework="vllm", vendor="amd", architecture="gfx1035"),
            r"vllm does not support drizzt's AMD Radeon 680M \(gfx1035\)",
        ),
        (
            GpuNeed(framework="torch", vendor="nvidia", min_memory_gb=20),
            "no GPU has 20 GB for torch: the largest NVIDIA GPU that runs it is elminster's "
            "NVIDIA GeForce RTX 2070 with 8 GB",
        ),
        (
            GpuNeed(framework="torch", node="elminster", min_memory_gb=20),
            "no GPU has 20 GB for torch: the largest GPU that runs it is elminster's",
        ),
        (
            GpuNeed(framework="torch", min_memory_gb=128),
            "no GPU has 128 GB for torch: the largest GPU that runs it is khelben's "
            "AMD Strix Halo with 64 GB",
        ),
        (
            GpuNeed(framework="torch", min_memory_gb=20),
            r"no GPU with 20 GB is free for it: khelben's AMD Strix Halo \(gfx1151\) is "
            r"dedicated to vllm \(pin node='khelben' to share it\)",
        ),
        (
            GpuNeed(framework="torch", vendor="xyz"),
            r"the cluster has no GPU from vendor 'xyz' \(vendors: amd, intel, nvidia\)",
        ),
        (
            GpuNeed(framework="torch", node="drizzt", vendor="nvidia"),
            "node 'drizzt' has an AMD GPU",
        ),
        (GpuNeed(framework="torch", node="gandalf"), "no node named 'gandalf' \\(nodes: storm"),
        (
            GpuNeed(framework="torch", node="storm"),
            r"node 'storm': it has no GPU \(a control-plane node\)",
        ),
        (GpuNeed(framework="torch", architecture="sm_90"), "no GPU of architecture 'sm_90'"),
        (GpuNeed(framework="whisper", vendor="amd"), "whisper does not support khelben's"),
        (GpuNeed(framework="jax"), "cannot place jax: jax does not support elminster's"),
    ],
)
def test_impossible_requests_are_refused_with_the_reason(
    need: GpuNeed, reason: str, inventory: ClusterInventory
) -> None:
    with pytest.raises(PlacementError, match=reason):
        place(need, inventory)


def test_placement_error_is_a_value_error() -> None:
    assert issubclass(PlacementError, ValueError)


@pytest.mark.parametrize("fraction", [0, -0.5, 1.01, 2])
def test_a_fraction_out_of_range_is_refused(fraction: float) -> None:
    with pytest.raises(ValidationError, match="gpu_fraction"):
        GpuNeed(framework="torch", gpu_fraction=fraction)


def test_needs_and_placements_are_strict() -> None:
    with pytest.raises(ValidationError, match="colour"):
        GpuNeed(framework="torch", colour="red")  # type: ignore[call-arg]
    placement = Placement(node=None, vendor="cpu", image="x")
    with pytest.raises(ValidationError, match="frozen"):
        placement.image = "y"  # type: ignore[misc]


# Loading inventories.


def test_the_shipped_inventory_is_read_once_and_describes_the_cluster() -> None:
    inventory = load_inventory()
    assert load_inventory() is inventory
    assert [n.name for n in inventory.gpu_nodes()] == ["elminster", "khelben", "drizzt", "danilo"]
    control = [n.name for n in inventory.nodes if n.role == "control-plane"]
    assert control == ["storm", "bruenor", "catti"]
    drizzt = inventory.node("drizzt")
    assert drizzt is not None and drizzt.gpu is not None
    assert "vllm" in drizzt.gpu.unsupported


def test_the_default_inventory_follows_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.settings import Settings

    data = shipped()
    data["default_nodes"]["sentence-transformers"] = "elminster"
    path = write(tmp_path, data)
    monkeypatch.setattr(
        "components.cluster.placement.get_settings", lambda: Settings(cluster_inventory=path)
    )
    assert place(GpuNeed(framework="sentence-transformers")).node == "elminster"


def test_a_user_inventory_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "images: {torch: {cuda: my/torch:cuda, cpu: my/torch:cpu}}\n"
        "nodes:\n"
        "  - name: box\n    role: worker\n"
        "    gpu: {vendor: nvidia, model: RTX 4090, architecture: sm_89, memory_gb: 24,\n"
        "          stack: cuda, resource: nvidia.com/gpu, frameworks: [torch],\n"
        "          env: {CUDA_MODULE_LOADING: LAZY}}\n",
    )
    inventory = load_inventory(path)
    placement = place(GpuNeed(framework="torch", min_memory_gb=20), inventory)
    assert (placement.node, placement.image) == ("box", "my/torch:cuda")
    assert placement.env == {"CUDA_MODULE_LOADING": "LAZY"}
    assert placement.accelerator_type == "RTX-4090"
    with pytest.raises(PlacementError, match="the cluster has no GPU from vendor 'amd'"):
        place(GpuNeed(framework="torch", vendor="amd"), inventory)


def test_an_invalid_inventory_names_the_file_and_field(tmp_path: Path) -> None:
    data = shipped()
    drizzt = next(n for n in data["nodes"] if n["name"] == "drizzt")
    drizzt["gpu"]["memory_gb"] = -1
    drizzt["gpu"]["colour"] = "red"
    path = write(tmp_path, data)
    with pytest.raises(InventoryError) as error:
        load_inventory(path)
    message = str(error.value)
    assert f"cluster inventory {path} is invalid" in message
    assert "nodes[drizzt].gpu.memory_gb: Input should be greater than 0" in message
    assert "nodes[drizzt].gpu.colour: Extra inputs are not permitted" in message


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d["nodes"][3]["gpu"].update(vendor="apple"), r"nodes\[elminster\].gpu.vendor"),
        (lambda d: d["images"]["torch"].update(tpu="x"), r"images.torch.tpu.\[key\]"),
        (lambda d: d["default_nodes"].update(vllm="gandalf"), "unknown node 'gandalf'"),
        (lambda d: d["default_nodes"].update(vllm="storm"), "'storm', which has no GPU"),
        (lambda d: d["nodes"].append(d["nodes"][0]), "nodes listed twice: storm"),
        (lambda d: d["images"].pop("whisper"), "lists whisper, but images.whisper has no cuda"),
        (
            lambda d: d["nodes"][0].update(gpu=d["nodes"][3]["gpu"]),
            r"nodes\[storm\]: Value error, a control-plane node takes no GPU work",
        ),
        (lambda d: d["nodes"][5]["gpu"]["frameworks"].append("vllm"), "both list vllm"),
    ],
)
def test_inconsistent_inventories_are_refused(tmp_path: Path, change: object, reason: str) -> None:
    data = shipped()
    change(data)  # type: ignore[operator]
    with pytest.raises(InventoryError, match=reason):
        load_inventory(write(tmp_path, data))


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"cannot read cluster inventory .*missing\.yaml"):
        load_inventory(tmp_path / "missing.yaml")
    with pytest.raises(InventoryError, match=r"cluster\.yaml is not valid YAML"):
        load_inventory(write(tmp_path, "nodes: [\n"))
    with pytest.raises(InventoryError, match=r"\(top level\): Input should be a valid dict"):
        load_inventory(write(tmp_path, "- just a list\n"))
