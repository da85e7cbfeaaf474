"""Per-step resource profiles: the registry's choice, the settings' values and overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from components.orchestration.step_resources import (
    DEFAULT_STEP_PROFILES,
    StepResources,
    quantity_value,
    step_resources,
)
from components.registry import JOBS
from components.settings import Settings, settings_env


def test_each_step_gets_its_profile() -> None:
    settings = Settings()
    shard = step_resources("document-ingestion", "ingest-shard", settings)
    assert shard == StepResources(**DEFAULT_STEP_PROFILES["model"])
    vllm = step_resources("batch-inference", "infer-shard-vllm", settings)
    assert vllm.memory_request == "16Gi"
    # A step the registry does not list (plan, the exit handler) is light.
    plan = step_resources("document-ingestion", "plan", settings)
    assert plan == StepResources(**DEFAULT_STEP_PROFILES["light"])
    assert quantity_value(shard.memory_request) >= quantity_value("1Gi")


def test_every_profile_the_registry_names_exists() -> None:
    profiles = Settings().step_profiles
    for job in JOBS.values():
        assert set(job.step_profiles.values()) <= set(profiles), job.name


def test_env_lays_a_profile_over_its_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMW_STEP_PROFILES", '{"model": {"memory_limit": "16Gi"}}')
    monkeypatch.setenv(
        "LLMW_STEP_PROFILE_BY_STEP", '{"batch-inference/infer-shard-openai": "model"}'
    )
    settings = Settings()
    model = step_resources("document-ingestion", "ingest-shard", settings)
    assert model.memory_limit == "16Gi"
    assert model.memory_request == DEFAULT_STEP_PROFILES["model"]["memory_request"]
    assert step_resources("batch-inference", "infer-shard-openai", settings) == model
    # What a subprocess rebuilds from the settings' variables is the same.
    monkeypatch.delenv("LLMW_STEP_PROFILES")
    monkeypatch.delenv("LLMW_STEP_PROFILE_BY_STEP")
    rebuilt = Settings(**{})
    assert rebuilt.step_profiles != settings.step_profiles
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings().step_profiles == settings.step_profiles


def test_unknown_profile_is_named() -> None:
    settings = Settings(step_profile_by_step={"document-removal/remove": "huge"})
    with pytest.raises(ValueError, match=r"document-removal/remove: no step profile 'huge'"):
        step_resources("document-removal", "remove", settings)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"memory_request": "9Gi"}, "memory_request 9Gi is above memory_limit 8Gi"),
        ({"cpu_limit": "four"}, "'four' is not a Kubernetes quantity"),
        ({"timeout_s": 0}, "greater than 0"),
    ],
)
def test_bad_profile_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(step_profiles={"model": fields})


def test_quantities() -> None:
    assert quantity_value("250m") == quantity_value("0.25")
    assert quantity_value("1Gi") == 1024**3
    assert quantity_value("2G") == 2 * 10**9
