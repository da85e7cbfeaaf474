"""Settings the event documents cannot be rendered from are refused, naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.settings import Settings
from sensors.config import EventsConfig, check_schedule, check_timezone
from sensors.render import documents


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"events_bucket": "Documents_2"}, "LLMW_EVENTS_BUCKET"),
        ({"events_bucket": "ab"}, "LLMW_EVENTS_BUCKET"),
        ({"events_prefix": "/docs/"}, "LLMW_EVENTS_PREFIX"),
        ({"events_prefix": "docs/../secret/"}, "LLMW_EVENTS_PREFIX"),
        ({"events_suffixes": ["md"]}, "LLMW_EVENTS_SUFFIXES"),
        ({"events_suffixes": [".m)d"]}, "LLMW_EVENTS_SUFFIXES"),
        ({"events_suffixes": []}, "LLMW_EVENTS_SUFFIXES is empty"),
        ({"events_schedule": "0 2 * *"}, "LLMW_EVENTS_SCHEDULE"),
        ({"events_schedule": "0 2 * * * ; rm"}, "LLMW_EVENTS_SCHEDULE"),
        ({"events_timezone": "Mars/Olympus_Mons"}, "LLMW_EVENTS_TIMEZONE"),
        ({"events_timezone": "../../etc/passwd"}, "LLMW_EVENTS_TIMEZONE"),
        ({"events_trigger_by_sensor": {"no-such-sensor": "direct"}}, "no-such-sensor"),
        (
            {"events_trigger": "direct", "events_engine": "kfp"},
            "LLMW_EVENTS_KFP_PIPELINE_IDS",
        ),
    ],
)
def test_bad_settings_are_refused(
    overrides: dict[str, Any], message: str, clean_env: None, schemas_dir: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        documents(Settings(**overrides), schemas_dir)


@pytest.mark.parametrize("schedule", ["0 2 * * *", "*/15 * * * 1-5", "@daily", "@every 90m"])
def test_schedules_argo_events_reads(schedule: str) -> None:
    check_schedule(schedule)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York"])
def test_timezones(zone: str) -> None:
    check_timezone(zone)


def test_trigger_path_and_engine_per_sensor(clean_env: None) -> None:
    from components.registry import get_job

    config = EventsConfig.from_settings(
        Settings(events_trigger_by_sensor={"nightly-reingest": "direct"}, argo_namespace="wf")
    )
    assert config.path("nightly-reingest") == "direct"
    assert config.path("document-created") == "bridge"
    assert config.namespace == config.workflows_namespace == "wf"
    assert config.engine_for(get_job("document-ingestion")) == "argo"
    kfp = EventsConfig.from_settings(Settings(events_engine="kfp", events_namespace="events"))
    assert kfp.engine_for(get_job("document-ingestion")) == "kfp"
    assert kfp.namespace == "events"


def test_settings_from_the_environment(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMW_EVENTS_TRIGGER_BY_SENSOR", '{"document-created": "direct"}')
    monkeypatch.setenv("LLMW_EVENTS_SUFFIXES", '[".md"]')
    monkeypatch.setenv("LLMW_EVENTS_PREFIX", "kb/")
    config = EventsConfig.from_settings(Settings())
    assert config.path("document-created") == "direct"
    assert config.suffixes == (".md",)
    assert config.prefix == "kb/"
