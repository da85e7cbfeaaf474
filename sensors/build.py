"""A Sensor document: its one dependency, filtered, and its trigger."""

from __future__ import annotations

from sensors.catalog import SensorDef
from sensors.config import SERVICE_ACCOUNT, EventsConfig
from sensors.event_sources import metadata
from sensors.models import (
    EventDependency,
    EventDependencyFilter,
    Sensor,
    SensorSpec,
    SensorTemplate,
)
from sensors.triggers import trigger_for


def build_sensor(sensor: SensorDef, config: EventsConfig) -> Sensor:
    dependency = EventDependency(
        name=sensor.event,
        event_source_name=sensor.source,
        event_name=sensor.event,
        filters=EventDependencyFilter(data=list(sensor.data_filters)),
    )
    meta = metadata(sensor.name, config)
    annotations = {
        "llm-workflows/description": sensor.description,
        "llm-workflows/pipeline": sensor.job,
        "llm-workflows/trigger-path": config.path(sensor.name),
    }
    spec = SensorSpec(
        event_bus_name=config.eventbus,
        template=SensorTemplate(service_account_name=SERVICE_ACCOUNT),
        dependencies=[dependency],
        triggers=[trigger_for(sensor, config)],
    )
    return Sensor(metadata=meta.model_copy(update={"annotations": annotations}), spec=spec)
