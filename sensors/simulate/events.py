"""A sample event as the sensor would receive it: a CloudEvent (``{"specversion", "id",
"source", "subject", "type", "data"}``, or Argo Events' ``{"context", "data"}``), or the source's
own JSON, wrapped as its EventSource would:

- minio: a record (``{"eventName", "s3": …}``), a notification (``{"Records": [...]}``), or
  ``{"notification": [...]}``; data ``{"notification": [records]}``;
- calendar: ``{"eventTime": …}``;
- webhook: ``{"header": …, "body": …}``, or just the POSTed JSON body.

A sample in the source's own JSON has no event id: its id is the first 32 hex digits of its
content's sha256, so one sample is always the same request (Argo Events gives each event it
dispatches a new random id, kept across redeliveries).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from sensors.simulate.jsonpath import compact

# The EventBus carries at most this much (NATS JetStream's default maximum payload).
MAX_EVENT_BYTES = 1024 * 1024
EPOCH = "1970-01-01T00:00:00Z"
_WEBHOOK_KEYS = {"header", "body", "metadata"}


class Refused(Exception):
    """The sample never becomes an event for this sensor; ``str()`` says why."""


@dataclass(frozen=True)
class Route:
    """What the sensor's dependency listens to, and its EventSource's entry for that event."""

    source: str
    event: str
    kind: str  # minio, calendar, webhook
    entry: dict[str, Any]


@dataclass
class Event:
    context: dict[str, str]
    data: Any
    form: str
    notes: list[str] = field(default_factory=list)


def parse(raw: bytes) -> Any:
    """The sample's JSON (ValueError when it is not JSON); Refused when it is too large."""
    if len(raw) > MAX_EVENT_BYTES:
        raise Refused(
            f"the event is {len(raw)} bytes; the EventBus carries at most {MAX_EVENT_BYTES}"
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"the event file is not JSON: {exc}") from None


def load(raw: bytes, route: Route) -> Event:
    """The event the sensor would receive, or Refused with the reason."""
    sample = parse(raw)
    if _is_cloud_event(sample):
        return _cloud_event(sample, route)
    if route.kind == "minio":
        event = _minio(sample, route)
    elif route.kind == "calendar":
        event = _calendar(sample)
    else:
        event = _webhook(sample, raw, route)
    event.context = _native_context(event.data, route)
    return event


def _is_cloud_event(sample: Any) -> bool:
    if not isinstance(sample, dict):
        return False
    structured = "specversion" in sample and "id" in sample
    return structured or ("context" in sample and set(sample) <= {"context", "data"})


def _native_context(data: Any, route: Route) -> dict[str, str]:
    when = EPOCH
    record = (data.get("notification") or [{}])[0] if route.kind == "minio" else data
    if isinstance(record, dict) and isinstance(record.get("eventTime"), str):
        when = record["eventTime"]
    return {
        "id": hashlib.sha256(compact(data).encode()).hexdigest()[:32],
        "source": route.source,
        "subject": route.event,
        "type": route.kind,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": when,
    }


def _cloud_event(sample: dict[str, Any], route: Route) -> Event:
    context = sample.get("context") if "context" in sample else sample
    if not isinstance(context, dict):
        raise ValueError("the CloudEvent's context is not an object")
    if not isinstance(context.get("id"), str) or not context["id"]:
        raise Refused("the CloudEvent has no id (a string)")
    kept = {k: str(context[k]) for k in ("id", "source", "subject", "type", "time") if k in context}
    where = (kept.get("source"), kept.get("subject"))
    if where != (route.source, route.event):
        raise Refused(
            f"the event comes from {where[0]}/{where[1]}: the sensor depends on "
            f"{route.source}/{route.event}"
        )
    content_type = str(context.get("datacontenttype", "application/json"))
    if content_type != "application/json":
        raise Refused(f"event data of type {content_type!r}: the sensor reads JSON data")
    if "data_base64" in sample:
        data = json.loads(base64.b64decode(sample["data_base64"]))
    elif "data" in sample:
        data = sample["data"]
    else:
        raise Refused("the event has no data")
    context = {"specversion": "1.0", "datacontenttype": content_type, **kept}
    return Event(context=context, data=data, form="CloudEvent")


def _records(sample: Any) -> tuple[list[Any], str]:
    if isinstance(sample, dict) and "s3" in sample:
        return [sample], "MinIO record"
    if isinstance(sample, dict) and isinstance(sample.get("Records"), list):
        return sample["Records"], "MinIO notification"
    if isinstance(sample, dict) and isinstance(sample.get("notification"), list):
        return sample["notification"], "MinIO event data"
    raise ValueError('not a MinIO record, a notification ({"Records": [...]}) or a CloudEvent')


def _minio(sample: Any, route: Route) -> Event:
    records, form = _records(sample)
    if not records:
        raise Refused("the notification holds no records")
    event = Event(context={}, data={"notification": records}, form=form)
    if len(records) > 1:
        event.notes.append(
            f"the notification holds {len(records)} records: Argo Events passes them as one "
            "event and the sensor reads the first (MinIO sends one record per notification)"
        )
    _listened(records[0], route.entry)
    return event


def _listened(record: Any, entry: dict[str, Any]) -> None:
    """Refused when the EventSource would not pass this record on: another bucket, a key
    outside its filter, an event it does not listen to (fields that are missing are left to
    the sensor's filters)."""
    s3 = record.get("s3") if isinstance(record, dict) else None
    bucket = s3.get("bucket", {}).get("name") if isinstance(s3, dict) else None
    key = s3.get("object", {}).get("key") if isinstance(s3, dict) else None
    name = record.get("eventName") if isinstance(record, dict) else None
    if isinstance(bucket, str) and bucket != entry["bucket"]["name"]:
        listened = entry["bucket"]["name"]
        raise Refused(f"the EventSource listens to bucket {listened!r}, not {bucket!r}")
    prefix, suffix = entry["filter"]["prefix"], entry["filter"]["suffix"]
    if isinstance(key, str) and not (key.startswith(prefix) and key.endswith(suffix)):
        raise Refused(f"key {key!r} is outside the EventSource's filter (prefix {prefix!r})")
    if isinstance(name, str) and not any(_event_matches(name, p) for p in entry["events"]):
        raise Refused(f"the EventSource listens to {', '.join(entry['events'])}, not {name}")


def _event_matches(name: str, pattern: str) -> bool:
    return name.startswith(pattern[:-1]) if pattern.endswith("*") else name == pattern


def _calendar(sample: Any) -> Event:
    if not isinstance(sample, dict):
        raise ValueError('a calendar event is an object ({"eventTime": …})')
    return Event(context={}, data=sample, form="calendar event")


def _webhook(sample: Any, raw: bytes, route: Route) -> Event:
    if isinstance(sample, dict) and "body" in sample and set(sample) <= _WEBHOOK_KEYS:
        data, size, form = sample, len(compact(sample["body"]).encode()), "webhook request"
    else:
        data = {"header": {"Content-Type": ["application/json"]}, "body": sample}
        size, form = len(raw), "webhook body"
    limit = route.entry.get("maxPayloadSize")
    if isinstance(limit, int) and size > limit:
        raise Refused(
            f"the body is {size} bytes, over the webhook's maxPayloadSize of {limit}: the "
            "EventSource answers with an error and makes no event"
        )
    return Event(context={}, data=data, form=form)
