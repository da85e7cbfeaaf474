"""What ``llmw events list`` shows: each sensor with its event source, what it listens to, and
the trigger it fires (path, kind, target), or why it was skipped."""

from __future__ import annotations

from typing import Any

from sensors.catalog import SensorDef
from sensors.models import CalendarEventSource, S3Artifact, WebhookEventSource
from sensors.render import EventDocuments


def listens(sensor: SensorDef) -> str:
    """The event, in words."""
    entry = sensor.entry
    if isinstance(entry, S3Artifact):
        where = f"s3://{entry.bucket.name}/{entry.filter.prefix}"
        return f"{', '.join(entry.events)} under {where}"
    if isinstance(entry, CalendarEventSource):
        return f"schedule {entry.schedule!r} ({entry.timezone})"
    if isinstance(entry, WebhookEventSource):
        secret = entry.auth_secret.name if entry.auth_secret else "none"
        return f"{entry.method} :{entry.port}{entry.endpoint} (bearer token: Secret {secret})"
    raise TypeError(f"unknown event source entry {type(entry).__name__}")


def trigger_target(trigger: dict[str, Any]) -> tuple[str, str]:
    """The trigger's kind and where it goes."""
    template = trigger["template"]
    if "nats" in template:
        return "nats", f"publish {template['nats']['subject']}"
    if "http" in template:
        return "http", f"{template['http']['method']} {template['http']['url']}"
    ref = template["argoWorkflow"]["source"]["resource"]["spec"]["workflowTemplateRef"]
    return "argoWorkflow", f"submit from WorkflowTemplate {ref['name']}"


def rows(found: EventDocuments) -> list[dict[str, Any]]:
    """One row per sensor, by name; skipped sensors say why."""
    listed: list[dict[str, Any]] = []
    for sensor in found.defs:
        trigger = found.sensors[sensor.name]["spec"]["triggers"][0]
        kind, target = trigger_target(trigger)
        dlq = trigger.get("dlqTrigger", {}).get("template", {}).get("nats", {})
        listed.append(
            {
                "sensor": sensor.name,
                "pipeline": sensor.job,
                "event_source": sensor.source,
                "source_type": sensor.source_type,
                "event": sensor.event,
                "listens": listens(sensor),
                "path": found.config.path(sensor.name),
                "trigger": trigger["template"]["name"],
                "kind": kind,
                "target": target,
                "dead_letter": dlq.get("subject"),
                "skipped": None,
            }
        )
    listed += [{"sensor": name, "skipped": reason} for name, reason in found.skipped.items()]
    return sorted(listed, key=lambda row: row["sensor"])
