"""Which sensors exist, built from the job registry: what each listens to, which events pass its
filters, and where each of its pipeline's parameters comes from.

- ``document-created``: a document uploaded under the prefix -> ``document-ingestion`` of
  exactly that object;
- ``document-removed``: a document deleted -> ``document-removal`` of its rows (only once that
  job is registered; until then it is skipped, with the reason);
- ``nightly-reingest``: the calendar -> ``document-ingestion`` of the whole prefix, with prune;
- ``ci-<pipeline>``: a POST to the CI webhook's ``/<pipeline>`` endpoint -> that pipeline with
  the body as its parameters (one sensor per registered pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.registry import JOBS, UnknownPipelineError, get_job
from sensors import filters
from sensors.config import (
    CALENDAR_SOURCE,
    MINIO_SOURCE,
    WEBHOOK_MAX_PAYLOAD_BYTES,
    WEBHOOK_PORT,
    WEBHOOK_SOURCE,
    EventsConfig,
)
from sensors.models import (
    CalendarEventSource,
    DataFilter,
    S3Artifact,
    S3Bucket,
    S3Filter,
    SecretKeySelector,
    WebhookEventSource,
)

REMOVAL_JOB = "document-removal"
RECORD = "notification.0"  # the MinIO record: Argo Events passes a notification's records
KEY = f"{RECORD}.s3.object.key"
KEY_TEMPLATE = "{{ (index .Input.notification 0).s3.object.key }}"
S3_KEY_SECRETS = ("LLMW_S3_ACCESS_KEY", "LLMW_S3_SECRET_KEY")


@dataclass(frozen=True)
class Const:
    """A fixed value, from the settings."""

    value: Any


@dataclass(frozen=True)
class FromEvent:
    """A value from the event's data: a gjson ``key``, or a Go ``template`` over it; with
    ``as_list``, a list holding that one value. ``default``: when the key is missing."""

    key: str | None = None
    template: str | None = None
    as_list: bool = False
    default: Any = None
    has_default: bool = False


@dataclass(frozen=True)
class WholeBody:
    """Every parameter from the webhook's JSON body, an object of ``name: value``."""

    key: str = "body"


ParamSource = Const | FromEvent
EventEntry = S3Artifact | CalendarEventSource | WebhookEventSource


@dataclass(frozen=True)
class SensorDef:
    """One sensor: one dependency (``source``/``event``, filtered) and one pipeline it starts."""

    name: str
    description: str
    job: str
    source: str
    source_type: str  # minio, calendar, webhook: the EventSource's kind
    event: str
    entry: EventEntry
    data_filters: tuple[DataFilter, ...]
    params: Mapping[str, ParamSource] | WholeBody = field(default_factory=dict)


def sensor_defs(config: EventsConfig) -> tuple[list[SensorDef], dict[str, str]]:
    """The sensors (by name) and those skipped, each with the reason."""
    defs = [_created(config), _nightly(config)]
    skipped: dict[str, str] = {}
    try:
        get_job(REMOVAL_JOB)
        defs.append(_removed(config))
    except UnknownPipelineError:
        skipped["document-removed"] = (
            f"pipeline {REMOVAL_JOB!r} is not registered (components.registry): "
            "object removals start nothing until it is"
        )
    defs += [_webhook(config, name) for name in sorted(JOBS)]
    defs.sort(key=lambda d: d.name)
    names = {d.name for d in defs} | set(skipped)
    unknown = sorted(set(config.paths) - names)
    if unknown:
        raise ValueError(
            f"LLMW_EVENTS_TRIGGER_BY_SENSOR names unknown sensors {', '.join(unknown)} "
            f"(sensors: {', '.join(sorted(names))})"
        )
    return defs, skipped


def _minio_entry(config: EventsConfig, s3_events: list[str]) -> S3Artifact:
    access, secret = (SecretKeySelector(name=config.s3_secret, key=k) for k in S3_KEY_SECRETS)
    return S3Artifact(
        endpoint=config.s3_endpoint,
        bucket=S3Bucket(name=config.bucket),
        events=s3_events,
        filter=S3Filter(prefix=config.prefix, suffix=""),
        insecure=not config.s3_secure,
        region=config.s3_region,
        access_key=access,
        secret_key=secret,
    )


def _document_filters(config: EventsConfig, event_prefix: str) -> tuple[DataFilter, ...]:
    """The bucket, the event name, and a key under the prefix with a document's suffix."""
    return (
        filters.equals(f"{RECORD}.s3.bucket.name", config.bucket),
        filters.starts_with(f"{RECORD}.eventName", event_prefix),
        filters.starts_with(KEY, config.prefix),
        filters.ends_with_any(KEY, config.suffixes),
        filters.safe_key(KEY),
    )


def _object_uri(config: EventsConfig) -> str:
    return f"s3://{config.bucket}/{KEY_TEMPLATE}"


def _created(config: EventsConfig) -> SensorDef:
    return SensorDef(
        name="document-created",
        description="A document uploaded under the prefix: ingest exactly that object.",
        job="document-ingestion",
        source=MINIO_SOURCE,
        source_type="minio",
        event="document-created",
        entry=_minio_entry(config, ["s3:ObjectCreated:*"]),
        data_filters=_document_filters(config, "s3:ObjectCreated:"),
        params={
            "source": FromEvent(template=_object_uri(config)),
            "collection": Const(config.collection),
        },
    )


def _removed(config: EventsConfig) -> SensorDef:
    return SensorDef(
        name="document-removed",
        description="A document deleted under the prefix: remove its rows from the collection.",
        job=REMOVAL_JOB,
        source=MINIO_SOURCE,
        source_type="minio",
        event="document-removed",
        entry=_minio_entry(config, ["s3:ObjectRemoved:*"]),
        data_filters=_document_filters(config, "s3:ObjectRemoved:"),
        params={
            "uris": FromEvent(template=_object_uri(config), as_list=True),
            "collection": Const(config.collection),
        },
    )


def _nightly(config: EventsConfig) -> SensorDef:
    return SensorDef(
        name="nightly-reingest",
        description="Every night: re-ingest the whole prefix, pruning what is gone.",
        job="document-ingestion",
        source=CALENDAR_SOURCE,
        source_type="calendar",
        event="nightly",
        entry=CalendarEventSource(schedule=config.schedule, timezone=config.timezone),
        data_filters=(filters.present("eventTime"),),
        params={
            "source": Const(f"s3://{config.bucket}/{config.prefix}"),
            "collection": Const(config.collection),
            "prune": Const(True),
        },
    )


def webhook_url(config: EventsConfig) -> str:
    """The Service the EventSource controller creates for the webhook, in-cluster."""
    service = f"{WEBHOOK_SOURCE}-eventsource-svc.{config.namespace}.svc.cluster.local"
    return f"http://{service}:{WEBHOOK_PORT}"


def _webhook(config: EventsConfig, job_name: str) -> SensorDef:
    job = get_job(job_name)
    required = [name for name, f in job.params_model.model_fields.items() if f.is_required()]
    checks = [filters.is_object("body"), filters.no_forbidden_keys("body")]
    checks += [filters.present(f"body.{name}") for name in required]
    entry = WebhookEventSource(
        endpoint=f"/{job_name}",
        method="POST",
        port=str(WEBHOOK_PORT),
        url=webhook_url(config),
        auth_secret=SecretKeySelector(name=config.webhook_secret, key="token"),
        max_payload_size=WEBHOOK_MAX_PAYLOAD_BYTES,
    )
    return SensorDef(
        name=f"ci-{job_name}",
        description=f"A CI POST to /{job_name}: run {job_name} with the body as parameters.",
        job=job_name,
        source=WEBHOOK_SOURCE,
        source_type="webhook",
        event=job_name,
        entry=entry,
        data_filters=tuple(checks),
        params=WholeBody(),
    )
