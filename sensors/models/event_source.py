"""EventSource: MinIO bucket notifications, a calendar and a webhook (Argo Events v1.9)."""

from __future__ import annotations

from typing import Literal

from sensors.models.base import API_VERSION, ObjectMeta, SecretKeySelector, WireModel


class S3Bucket(WireModel):
    name: str


class S3Filter(WireModel):
    """MinIO's own key filter (one prefix, one suffix; both required, either may be empty)."""

    prefix: str
    suffix: str


class S3Artifact(WireModel):
    """A MinIO bucket's notifications: the events listened to, under a key filter."""

    endpoint: str
    bucket: S3Bucket
    events: list[str]
    filter: S3Filter
    insecure: bool
    region: str | None = None
    access_key: SecretKeySelector
    secret_key: SecretKeySelector


class CalendarEventSource(WireModel):
    schedule: str
    timezone: str


class WebhookEventSource(WireModel):
    """An HTTP endpoint; ``auth_secret``'s value must come as ``Authorization: Bearer …``."""

    endpoint: str
    method: str
    port: str
    url: str
    auth_secret: SecretKeySelector | None = None
    max_payload_size: int | None = None


class ServicePort(WireModel):
    name: str
    port: int
    target_port: int


class Service(WireModel):
    """The Service the EventSource controller creates in front of a webhook."""

    ports: list[ServicePort]


class EventSourceSpec(WireModel):
    event_bus_name: str
    minio: dict[str, S3Artifact] | None = None
    calendar: dict[str, CalendarEventSource] | None = None
    webhook: dict[str, WebhookEventSource] | None = None
    service: Service | None = None


class EventSource(WireModel):
    api_version: str = API_VERSION
    kind: Literal["EventSource"] = "EventSource"
    metadata: ObjectMeta
    spec: EventSourceSpec
