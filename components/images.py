"""This project's container images: their repository, and tags made of the project's version.

The version has one source, ``pyproject.toml`` (read from the installed distribution's
metadata); the component image, the inventory's ``{version}`` fields and ``make images`` all
take their tags from here. Each variant is built from ``images/<variant>.Containerfile``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import version

DISTRIBUTION = "llm-workflows"
IMAGE_REPOSITORY = "ghcr.io/daviestechlabs/llm-workflows"
# One image per vendor stack, plus this project installed over vLLM (batch inference's engine).
# The cpu image carries the bare version as its tag; the others add "-<variant>".
VARIANTS = ("cpu", "cuda", "rocm", "xpu", "vllm-cuda", "vllm-rocm")
VERSION_FIELD = "{version}"


@lru_cache(maxsize=1)
def project_version() -> str:
    """The installed project's version (``pyproject.toml``'s ``[project] version``)."""
    return version(DISTRIBUTION)


def project_image(variant: str = "cpu") -> str:
    """``ghcr.io/daviestechlabs/llm-workflows:0.1.0`` for cpu, ``…:0.1.0-rocm`` for rocm."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}; known: {', '.join(VARIANTS)}")
    suffix = "" if variant == "cpu" else f"-{variant}"
    return f"{IMAGE_REPOSITORY}:{project_version()}{suffix}"


def with_version(image: str) -> str:
    """``image`` with ``{version}`` replaced by the project's version (inventory entries)."""
    return image.replace(VERSION_FIELD, project_version())


def variant_of(image: str) -> str | None:
    """The variant a project image is tagged as; None for an image of another repository.

    Raises ValueError for a project image whose tag is not this version's (a stale or unknown
    tag names an image that ``make images`` does not build).
    """
    repository, _, tag = image.rpartition(":")
    if repository != IMAGE_REPOSITORY:
        return None
    for variant in VARIANTS:
        if project_image(variant) == image:
            return variant
    raise ValueError(
        f"{image}: tag {tag!r} is not one of this version's ({project_version()}) image tags"
    )


def main() -> None:
    """Prints ``<variant> <image>`` for each variant: what ``make images`` builds."""
    for variant in VARIANTS:
        print(variant, project_image(variant))


if __name__ == "__main__":
    main()
