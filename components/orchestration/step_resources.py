"""What each step of a job asks of the cluster: CPU and memory requests and limits and how long
one attempt may run, from a named profile in settings.

A job's steps name their profile in the registry (``JobSpec.step_profiles``; a step not listed
is ``light``); the profiles' values are settings (``LLMW_STEP_PROFILES``, a JSON object whose
entries are laid over the defaults below, field by field), and ``LLMW_STEP_PROFILE_BY_STEP``
moves a step to another profile (``{"batch-inference/infer-shard-openai": "model"}``). Both
engine rooms translate the result: Argo as the container's ``resources`` and the template's
``activeDeadlineSeconds``, KFP as ``set_cpu_limit``/``set_memory_limit`` and a timeout.

Requests and limits are set on every step so no pod is BestEffort (evicted first on a busy
node); GPU limits come from the step's placement, not from here.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from components.settings import Settings

LIGHT = "light"
MODEL = "model"
GPU_MODEL = "gpu-model"

# Kubernetes quantities: a decimal number and an optional binary or decimal suffix.
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>[KMGTPE]i|m|k|[MGTPE])?$")
_MULTIPLIERS: dict[str | None, Decimal] = {None: Decimal(1), "m": Decimal("0.001")}
_MULTIPLIERS.update({s: Decimal(10) ** (3 * (i + 1)) for i, s in enumerate("kMGTPE")})
_MULTIPLIERS.update({s + "i": Decimal(2) ** (10 * (i + 1)) for i, s in enumerate("KMGTPE")})


def quantity_value(text: str) -> Decimal:
    """A Kubernetes quantity (``250m``, ``2``, ``512Mi``, ``8Gi``) as a number; ValueError else."""
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (such as 500m, 2, 512Mi, 8Gi)")
    return Decimal(match["number"]) * _MULTIPLIERS[match["suffix"]]


class StepResources(BaseModel):
    """One step's CPU and memory (Kubernetes quantities) and the seconds one attempt may run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    timeout_s: int = Field(gt=0)

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantity(cls, value: str) -> str:
        quantity_value(value)
        return value

    @model_validator(mode="after")
    def _request_within_limit(self) -> StepResources:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if quantity_value(request) > quantity_value(limit):
                raise ValueError(f"{kind}_request {request} is above {kind}_limit {limit}")
        return self


# Light: plan, merge, report, remove and the exit handler (Python, pymilvus, the S3 client).
# Model: a model in this process's memory (sentence-transformers, transformers on the CPU).
# GPU model: vLLM and others on a GPU, whose loading passes the weights through host memory.
DEFAULT_STEP_PROFILES: dict[str, dict[str, Any]] = {
    LIGHT: {
        "cpu_request": "250m",
        "cpu_limit": "1",
        "memory_request": "512Mi",
        "memory_limit": "2Gi",
        "timeout_s": 3600,
    },
    MODEL: {
        "cpu_request": "1",
        "cpu_limit": "4",
        "memory_request": "4Gi",
        "memory_limit": "8Gi",
        "timeout_s": 4 * 3600,
    },
    GPU_MODEL: {
        "cpu_request": "2",
        "cpu_limit": "8",
        "memory_request": "16Gi",
        "memory_limit": "32Gi",
        "timeout_s": 6 * 3600,
    },
}


def merged_profiles(value: Any) -> Any:
    """The settings' ``step_profiles``: each given profile laid over its default field by field
    (``{"model": {"memory_limit": "16Gi"}}`` changes that one value); new profiles are whole."""
    if not isinstance(value, dict):
        return value
    merged: dict[str, Any] = {name: dict(fields) for name, fields in DEFAULT_STEP_PROFILES.items()}
    for name, fields in value.items():
        if isinstance(fields, StepResources):
            fields = fields.model_dump()
        if isinstance(fields, dict):
            merged[name] = {**merged.get(name, {}), **fields}
        else:
            merged[name] = fields
    return merged


def step_profile(job: str, step: str) -> str:
    """The profile that job ``job``'s step ``step`` names in the registry (``light`` if none)."""
    from components.registry import get_job

    return get_job(job).step_profiles.get(step, LIGHT)


def step_resources(job: str, step: str, settings: Settings) -> StepResources:
    """What step ``step`` of job ``job`` asks for: its profile (the settings' per-step choice,
    else the registry's) from the settings' profiles. ValueError names an unknown profile."""
    name = settings.step_profile_by_step.get(f"{job}/{step}") or step_profile(job, step)
    try:
        return settings.step_profiles[name]
    except KeyError:
        known = ", ".join(sorted(settings.step_profiles))
        raise ValueError(f"{job}/{step}: no step profile {name!r} (profiles: {known})") from None
