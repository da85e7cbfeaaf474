"""The project's images: a recipe for every image the inventory and the compiled output name, tags
made of the project's version, and a lock that the tests and the images install alike."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from components.cluster.inventory import load_inventory
from components.images import (
    IMAGE_REPOSITORY,
    VARIANTS,
    project_image,
    project_version,
    variant_of,
)

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "images"
LOCK = REPO / "requirements" / "lock.txt"


def recipe(variant: str) -> Path:
    return RECIPES / f"{variant}.Containerfile"


def images_in(node: Any) -> Iterator[str]:
    """Every value of an ``image`` key, at any depth (KFP executors, pod specs, RayService)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "image" and isinstance(value, str):
                yield value
            else:
                yield from images_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from images_in(item)


def inventory_images() -> set[str]:
    inventory = load_inventory()
    return {image for by_stack in inventory.images.values() for image in by_stack.values()}


@pytest.fixture(scope="module")
def compiled_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """image -> the compiled files naming it, from a real ``llmw compile`` on the defaults."""
    out = tmp_path_factory.mktemp("compiled")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMW_")}
    result = subprocess.run(
        [sys.executable, "-m", "llmw.cli", "compile", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    named: dict[str, list[str]] = {}
    for path in sorted(out.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for image in images_in(document):
                named.setdefault(image, []).append(str(path.relative_to(out)))
    return named


def test_every_variant_has_a_recipe_and_every_recipe_is_a_variant() -> None:
    assert sorted(p.name for p in RECIPES.glob("*.Containerfile")) == sorted(
        recipe(v).name for v in VARIANTS
    )
    for variant in VARIANTS:
        # Each installs the project through the one script, from the lock.
        assert "images/install.sh" in recipe(variant).read_text(encoding="utf-8"), variant


def test_every_image_the_inventory_names_is_built_here_or_upstream() -> None:
    ours = {image for image in inventory_images() if variant_of(image) is not None}
    assert ours, "the inventory names none of the project's images"
    for image in sorted(ours):
        variant = variant_of(image)
        assert variant is not None
        assert recipe(variant).is_file(), f"{image}: no {recipe(variant).name}"
    # Every project image the placement can choose is one make images builds.
    assert ours <= {project_image(v) for v in VARIANTS}


def test_every_image_the_compiled_output_names_has_a_recipe(
    compiled_images: dict[str, list[str]],
) -> None:
    assert project_image() in compiled_images  # the component image
    upstream = inventory_images()
    for image, files in sorted(compiled_images.items()):
        variant = variant_of(image)  # a stale tag raises, naming the image
        if variant is None:
            assert image in upstream, f"{image} ({', '.join(files)}): not built here nor listed"
        else:
            assert recipe(variant).is_file(), f"{image} ({', '.join(files)}): no recipe"
    built = {variant_of(image) for image in compiled_images} - {None}
    assert {"cpu", "rocm", "vllm-rocm"} <= built, built


def test_tags_are_the_version_of_pyproject_toml() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    version = declared["project"]["version"]
    # A stale install (pyproject bumped, make install not rerun) would tag the old version.
    assert project_version() == version
    assert project_image() == f"{IMAGE_REPOSITORY}:{version}"
    assert project_image("vllm-rocm") == f"{IMAGE_REPOSITORY}:{version}-vllm-rocm"
    assert "{version}" not in "".join(inventory_images())


def test_component_image_default_is_the_cpu_image(default_settings: Any) -> None:
    assert default_settings.component_image == project_image("cpu")


def test_a_stale_or_unknown_tag_is_refused_by_name() -> None:
    stale = f"{IMAGE_REPOSITORY}:0.0.9-rocm"
    with pytest.raises(ValueError, match=re.escape(f"{stale}: tag '0.0.9-rocm'")):
        variant_of(stale)
    with pytest.raises(ValueError, match="unknown image variant 'tpu'"):
        project_image("tpu")
    assert variant_of("vllm/vllm-openai:v0.11.0") is None


def test_an_inventory_of_ones_own_can_use_the_version_field(tmp_path: Path) -> None:
    shipped = (REPO / "components/cluster/data/cluster.yaml").read_text(encoding="utf-8")
    mine = tmp_path / "cluster.yaml"
    mine.write_text(shipped.replace("ghcr.io/daviestechlabs", "registry.lab"), encoding="utf-8")
    images = load_inventory(mine).images
    assert images["transformers"]["rocm"] == f"registry.lab/llm-workflows:{project_version()}-rocm"


def locked() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def test_the_lock_covers_every_dependency_of_pyproject_toml() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in ("dev", "gpu"):
        wanted += project["optional-dependencies"][extra]
    pins = locked()
    missing = sorted(
        str(r) for r in map(Requirement, wanted) if canonicalize_name(r.name) not in pins
    )
    assert not missing, f"requirements/lock.txt lacks {missing}: run `make lock`"
    stale = sorted(
        f"{r.name}=={pins[canonicalize_name(r.name)]} (wants {r.specifier})"
        for r in map(Requirement, wanted)
        if not r.specifier.contains(pins[canonicalize_name(r.name)], prereleases=True)
    )
    assert not stale, f"requirements/lock.txt pins {stale}: run `make lock`"


def test_the_tests_run_on_the_locked_versions() -> None:
    pins = locked()
    drifted = []
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"])
        # torch is the stack's build of the locked version (here 2.13.0+cpu).
        installed = dist.version.split("+")[0] if name == "torch" else dist.version
        if name in pins and installed != pins[name]:
            drifted.append(f"{name} {dist.version} (lock: {pins[name]})")
    assert not drifted, f"installed apart from the lock: {sorted(drifted)}; rerun `make install`"
