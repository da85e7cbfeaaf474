"""The settings the event documents are rendered from, checked once, with what derives from them
(namespaces, each sensor's trigger path and engine), and the fixed choices that go with them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensors.models import Backoff, RateLimit

if TYPE_CHECKING:
    from components.registry import JobSpec
    from components.settings import Settings

# The bridge's subjects (bridge.messages; a test keeps them equal): a request for pipeline P is
# published on TRIGGER_PREFIX + P; what no trigger could deliver goes to the dead-letter subject,
# in the same stream (AI_PIPELINE keeps ai.pipeline.> for 24 h).
TRIGGER_PREFIX = "ai.pipeline.trigger."
DEAD_LETTER_SUBJECT = "ai.pipeline.deadletter.trigger_failed"
SERVICE_ACCOUNT = "llmw-sensors"
MINIO_SOURCE = "llmw-minio"
CALENDAR_SOURCE = "llmw-calendar"
WEBHOOK_SOURCE = "llmw-ci-webhook"
WEBHOOK_PORT = 12000
# A webhook body over this is refused by the EventSource (no event); well under the bridge's
# 64 KiB request limit once the envelope is added.
WEBHOOK_MAX_PAYLOAD_BYTES = 16 * 1024
HTTP_TIMEOUT_S = 30
# Every trigger: retried 5 times over about a minute (2, 4, 8, 16, 32 s, ±20 %), at most 10 a
# second (a bulk upload queues instead of flooding the bridge or the engine), at least once.
RETRY = Backoff(steps=5, duration="2s", factor=2.0, jitter=0.2)
RATE_LIMIT = RateLimit(unit="Second", requests_per_unit=10)
LABELS = {"app.kubernetes.io/part-of": "llm-workflows", "app.kubernetes.io/component": "sensors"}

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CRON_FIELD = re.compile(r"^[A-Za-z0-9*/,?-]+$")
_CRON_DESCRIPTORS = (
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
)


@dataclass(frozen=True)
class EventsConfig:
    """The events settings, checked (``from_settings``), and the other settings they use."""

    namespace: str
    workflows_namespace: str
    eventbus: str
    bucket: str
    prefix: str
    suffixes: tuple[str, ...]
    schedule: str
    timezone: str
    collection: str
    default_path: str
    paths: Mapping[str, str]
    engine: str | None
    nats_url: str
    nats_auth: str
    nats_secret: str
    s3_endpoint: str
    s3_secure: bool
    s3_region: str | None
    s3_secret: str
    webhook_secret: str
    kfp_host: str
    kfp_pipeline_ids: Mapping[str, str]
    kfp_experiment_id: str | None
    kfp_auth_secret: str

    @classmethod
    def from_settings(cls, settings: Settings) -> EventsConfig:
        """The config, or ValueError naming the setting that is wrong."""
        _check(settings)
        return cls(
            namespace=settings.events_namespace or settings.argo_namespace,
            workflows_namespace=settings.argo_namespace,
            eventbus=settings.events_eventbus,
            bucket=settings.events_bucket,
            prefix=settings.events_prefix,
            suffixes=tuple(settings.events_suffixes),
            schedule=settings.events_schedule,
            timezone=settings.events_timezone,
            collection=settings.collection,
            default_path=settings.events_trigger,
            paths=dict(settings.events_trigger_by_sensor),
            engine=settings.events_engine,
            nats_url=settings.cluster_nats_url,
            nats_auth=settings.events_nats_auth,
            nats_secret=settings.bridge_nats_secret,
            s3_endpoint=settings.s3_endpoint,
            s3_secure=settings.s3_secure,
            s3_region=settings.s3_region,
            s3_secret=settings.s3_credentials_secret,
            webhook_secret=settings.events_webhook_secret,
            kfp_host=settings.kfp_host.rstrip("/"),
            kfp_pipeline_ids=dict(settings.events_kfp_pipeline_ids),
            kfp_experiment_id=settings.events_kfp_experiment_id,
            kfp_auth_secret=settings.events_kfp_auth_secret,
        )

    def path(self, sensor: str) -> str:
        """``bridge`` or ``direct``: how ``sensor`` starts its pipeline."""
        return self.paths.get(sensor, self.default_path)

    def engine_for(self, job: JobSpec) -> str:
        """The engine a direct trigger submits ``job`` to: the setting, else the job's own."""
        return self.engine or job.default_engine


def _check(settings: Settings) -> None:
    if not _BUCKET.match(settings.events_bucket):
        raise ValueError(f"LLMW_EVENTS_BUCKET {settings.events_bucket!r} is not a bucket name")
    prefix = settings.events_prefix
    if prefix.startswith("/") or any(part in (".", "..") for part in prefix.split("/")[:-1]):
        raise ValueError(f"LLMW_EVENTS_PREFIX {prefix!r} must be a key prefix like 'docs/'")
    for suffix in settings.events_suffixes:
        if not re.fullmatch(r"\.[A-Za-z0-9]+", suffix):
            raise ValueError(f"LLMW_EVENTS_SUFFIXES: {suffix!r} is not a suffix like '.md'")
    if not settings.events_suffixes:
        raise ValueError("LLMW_EVENTS_SUFFIXES is empty: no key would ever be a document")
    check_schedule(settings.events_schedule)
    check_timezone(settings.events_timezone)


def check_schedule(schedule: str) -> None:
    """A cron schedule as Argo Events reads it: five fields, or a descriptor (``@daily``)."""
    text = schedule.strip()
    if text in _CRON_DESCRIPTORS or re.fullmatch(r"@every \d+(ns|us|ms|s|m|h)", text):
        return
    fields = text.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(field) for field in fields):
        raise ValueError(
            f"LLMW_EVENTS_SCHEDULE {schedule!r} is not a cron schedule "
            "(five fields, 'minute hour day month weekday', or @daily…)"
        )


def check_timezone(name: str) -> None:
    """An IANA timezone (``Europe/Berlin``), where this machine knows the zone database."""
    import zoneinfo

    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"LLMW_EVENTS_TIMEZONE {name!r} is not an IANA timezone")
    if name == "UTC" or not zoneinfo.available_timezones():
        return
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"LLMW_EVENTS_TIMEZONE {name!r} is not an IANA timezone (like Europe/Berlin)"
        ) from None
