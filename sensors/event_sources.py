"""The EventSources the sensors listen to: one per kind (MinIO, calendar, webhook), holding
the event each sensor depends on."""

from __future__ import annotations

from collections.abc import Iterable

from sensors.catalog import SensorDef
from sensors.config import LABELS, WEBHOOK_PORT, EventsConfig
from sensors.models import (
    CalendarEventSource,
    EventSource,
    EventSourceSpec,
    ObjectMeta,
    S3Artifact,
    Service,
    ServicePort,
    WebhookEventSource,
)


def metadata(name: str, config: EventsConfig, namespace: str | None = None) -> ObjectMeta:
    return ObjectMeta(
        name=name,
        namespace=namespace or config.namespace,
        labels={**LABELS, "app.kubernetes.io/name": name},
    )


def event_sources(sensors: Iterable[SensorDef], config: EventsConfig) -> list[EventSource]:
    """One EventSource per source the sensors name, sorted by name; events sorted by name."""
    by_source: dict[str, list[SensorDef]] = {}
    for sensor in sensors:
        by_source.setdefault(sensor.source, []).append(sensor)
    return [
        _event_source(name, sorted(group, key=lambda s: s.event), config)
        for name, group in sorted(by_source.items())
    ]


def _event_source(name: str, group: list[SensorDef], config: EventsConfig) -> EventSource:
    kinds = {sensor.source_type for sensor in group}
    if len(kinds) != 1:
        raise ValueError(f"EventSource {name} would mix kinds {sorted(kinds)}")
    minio = {s.event: s.entry for s in group if isinstance(s.entry, S3Artifact)}
    calendar = {s.event: s.entry for s in group if isinstance(s.entry, CalendarEventSource)}
    webhook = {s.event: s.entry for s in group if isinstance(s.entry, WebhookEventSource)}
    service = None
    if webhook:
        port = ServicePort(name="http", port=WEBHOOK_PORT, target_port=WEBHOOK_PORT)
        service = Service(ports=[port])
    spec = EventSourceSpec(
        event_bus_name=config.eventbus,
        minio=minio or None,
        calendar=calendar or None,
        webhook=webhook or None,
        service=service,
    )
    return EventSource(metadata=metadata(name, config), spec=spec)
