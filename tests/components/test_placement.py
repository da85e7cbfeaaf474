"""GPU placement on the cluster's four GPU nodes, and every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.inventory import InventoryError, load_inventory
from components.placement import GpuNeed, PlacementError, place


def test_vllm_goes_to_khelben_with_its_toleration() -> None:
    placement = place(GpuNeed(framework="vllm"))
    assert placement.node == "khelben"
    assert placement.node_selector == {"kubernetes.io/hostname": "khelben"}
    assert (placement.resource, placement.count) == ("amd.com/gpu", 1)
    assert placement.tolerations == [
        {"key": "dedicated", "operator": "Equal", "value": "vllm", "effect": "NoSchedule"}
    ]
    assert placement.image.startswith("rocm/vllm")


def test_embeddings_go_to_drizzt_with_the_gfx_override() -> None:
    placement = place(GpuNeed(framework="sentence-transformers", gpu_fraction=0.8))
    assert placement.node == "drizzt"
    assert placement.resource == "amd.com/gpu"
    assert placement.env == {"HSA_OVERRIDE_GFX_VERSION": "10.3.0"}
    assert placement.gpu_fraction == 0.8
    assert placement.accelerator == "AMD Radeon 680M"
    assert "rocm" in placement.image


def test_nvidia_and_intel_nodes() -> None:
    nvidia = place(GpuNeed(framework="torch", vendor="nvidia"))
    assert (nvidia.node, nvidia.resource, nvidia.env) == ("elminster", "nvidia.com/gpu", {})
    assert "cuda" in nvidia.image
    intel = place(GpuNeed(framework="reranker", vendor="intel"))
    assert (intel.node, intel.resource) == ("danilo", "gpu.intel.com/i915")
    pinned = place(GpuNeed(framework="torch", node="danilo"))
    assert pinned.node_selector == {"kubernetes.io/hostname": "danilo"}
    assert "xpu" in pinned.image


def test_a_step_without_gpu_gets_the_cpu_image_and_no_resource() -> None:
    placement = place(GpuNeed(framework="sentence-transformers", gpu=False))
    assert (placement.node, placement.resource, placement.count) == (None, None, 0)
    assert placement.vendor == "cpu"


def test_memory_picks_the_gpu_that_fits() -> None:
    assert place(GpuNeed(framework="torch", min_memory_gb=20)).node == "khelben"


@pytest.mark.parametrize(
    ("need", "reason"),
    [
        (GpuNeed(framework="vllm", node="drizzt"), r"drizzt's AMD Radeon 680M \(gfx1035\)"),
        (GpuNeed(framework="vllm", vendor="amd", architecture="gfx1035"), "does not support"),
        (
            GpuNeed(framework="torch", vendor="nvidia", min_memory_gb=20),
            "no GPU has 20 GB for torch: the largest candidate is elminster's "
            "NVIDIA GeForce RTX 2070 with 8 GB",
        ),
        (GpuNeed(framework="torch", min_memory_gb=128), "no GPU has 128 GB"),
        (GpuNeed(framework="torch", node="gandalf"), "no node named 'gandalf'"),
        (GpuNeed(framework="torch", node="storm"), "node 'storm' has no GPU"),
        (GpuNeed(framework="whisper", vendor="amd"), "does not run whisper"),
    ],
)
def test_impossible_requests_are_refused_with_the_reason(need: GpuNeed, reason: str) -> None:
    with pytest.raises(PlacementError, match=reason):
        place(need)


def test_unknown_vendor_and_bad_fraction_are_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="vendor"):
        GpuNeed(framework="torch", vendor="apple")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="gpu_fraction"):
        GpuNeed(framework="torch", gpu_fraction=1.5)


def test_one_gpu_of_each_kind() -> None:
    inventory = load_inventory()
    assert inventory.gpus_of_kind("AMD Strix Halo") == 1


def test_a_user_inventory_replaces_the_shipped_one(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "images: {torch: {cuda: my/torch:cuda, cpu: my/torch:cpu}}\n"
        "nodes:\n"
        "  - name: box\n    role: worker\n"
        "    gpu: {vendor: nvidia, model: RTX 4090, architecture: sm_89, memory_gb: 24,\n"
        "          stack: cuda, resource: nvidia.com/gpu, frameworks: [torch]}\n"
    )
    placement = place(GpuNeed(framework="torch", min_memory_gb=20), load_inventory(path))
    assert (placement.node, placement.image) == ("box", "my/torch:cuda")


def test_an_invalid_inventory_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    path.write_text(
        "images: {}\nnodes:\n  - name: box\n    role: worker\n"
        "    gpu: {vendor: nvidia, model: X, architecture: a, memory_gb: -1, stack: cuda,\n"
        "          resource: nvidia.com/gpu, frameworks: [], colour: red}\n"
    )
    with pytest.raises(InventoryError, match=r"cluster.yaml is invalid: .*memory_gb.*colour"):
        load_inventory(path)
