"""Sensor: the events it depends on, filtered, and the triggers it fires (Argo Events v1.9)."""

from __future__ import annotations

from typing import Literal

from sensors.models.base import API_VERSION, ObjectMeta, WireModel
from sensors.models.trigger import Trigger


class DataFilter(WireModel):
    """A test on the event's data: the value at ``path`` (gjson) against ``value``; for
    ``type: string`` each value is a regular expression, searched (not anchored)."""

    path: str
    type: Literal["string", "number", "bool"]
    value: list[str]
    comparator: Literal["=", "!="] | None = None


class EventDependencyFilter(WireModel):
    data: list[DataFilter]


class EventDependency(WireModel):
    name: str
    event_source_name: str
    event_name: str
    filters: EventDependencyFilter | None = None


class SensorTemplate(WireModel):
    """The sensor pod: only its ServiceAccount is set here."""

    service_account_name: str


class SensorSpec(WireModel):
    event_bus_name: str
    template: SensorTemplate
    dependencies: list[EventDependency]
    triggers: list[Trigger]


class Sensor(WireModel):
    api_version: str = API_VERSION
    kind: Literal["Sensor"] = "Sensor"
    metadata: ObjectMeta
    spec: SensorSpec
