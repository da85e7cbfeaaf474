"""Every event document (EventSources, Sensors, the sensors' RBAC), validated, as YAML.

The output depends only on the code and the settings: the same inputs give byte-identical
files. Each EventSource and Sensor is checked against ``<schemas_dir>/argo-events-v1.9.11``
made strict (components.orchestration.schema_validation, the rules the WorkflowTemplates get),
and each Workflow an ``argoWorkflow`` trigger would submit against the Argo Workflows schema,
before anything is written; a violation raises SchemaViolationError listing every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from components.orchestration.rendered_files import write_rendered
from components.orchestration.schema_validation import assert_valid
from components.registry import JOBS
from components.settings import Settings, get_settings
from sensors.build import build_sensor
from sensors.catalog import SensorDef, sensor_defs
from sensors.config import EventsConfig
from sensors.event_sources import event_sources
from sensors.rbac import rbac_documents

SCHEMA_FILE = "argo-events-v1.9.11.schema.json"
WORKFLOWS_SCHEMA_FILE = "argo-workflows-v4.0.5.schema.json"
FOLDER = "sensors"
EVENT_SOURCE_SUFFIX = ".eventsource.yaml"
SENSOR_SUFFIX = ".sensor.yaml"
RBAC_FILE = "rbac.k8s.yaml"


@dataclass
class EventDocuments:
    """The documents, by name, and the sensors that were skipped, each with the reason."""

    config: EventsConfig
    defs: list[SensorDef]
    event_sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    sensors: dict[str, dict[str, Any]] = field(default_factory=dict)
    rbac: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def sensor_def(self, name: str) -> SensorDef | None:
        return next((d for d in self.defs if d.name == name), None)


def schema_path(schemas_dir: Path, name: str = SCHEMA_FILE) -> Path:
    path = Path(schemas_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the pinned schema {path} is missing: set LLMW_SCHEMAS_DIR to the folder holding "
            f"{name} (shipped in components/orchestration/schemas)"
        )
    return path


def build_documents(settings: Settings | None = None) -> EventDocuments:
    """Every document, built from the registry and the settings (not yet validated)."""
    settings = settings or get_settings()
    config = EventsConfig.from_settings(settings)
    defs, skipped = sensor_defs(config)
    found = EventDocuments(config=config, defs=defs, skipped=skipped)
    for source in event_sources(defs, config):
        found.event_sources[str(source.metadata.name)] = source.dump()
    for sensor in defs:
        found.sensors[sensor.name] = build_sensor(sensor, config).dump()
    found.rbac = rbac_documents(config, sorted(JOBS))
    return found


def workflows_in(sensor: dict[str, Any]) -> list[dict[str, Any]]:
    """The Workflows a Sensor's argoWorkflow triggers submit (before the event's values)."""
    return [
        trigger["template"]["argoWorkflow"]["source"]["resource"]
        for trigger in sensor["spec"]["triggers"]
        if "argoWorkflow" in trigger["template"]
    ]


def validate(found: EventDocuments, schemas_dir: Path) -> None:
    """Raise SchemaViolationError unless every document is strictly valid."""
    events_schema = schema_path(schemas_dir)
    for name, source in found.event_sources.items():
        assert_valid(source, events_schema, f"EventSource {name}")
    for name, sensor in found.sensors.items():
        assert_valid(sensor, events_schema, f"Sensor {name}")
        for workflow in workflows_in(sensor):
            workflows_schema = schema_path(schemas_dir, WORKFLOWS_SCHEMA_FILE)
            assert_valid(workflow, workflows_schema, f"Sensor {name}'s Workflow")
    # The Kubernetes definitions (ServiceAccount, Role, RoleBinding) the events schema embeds.
    for document in found.rbac:
        assert_valid(document, events_schema)


def documents(settings: Settings | None = None, schemas_dir: Path | None = None) -> EventDocuments:
    """Every document, validated (schemas from ``settings.schemas_dir``)."""
    settings = settings or get_settings()
    found = build_documents(settings)
    validate(found, schemas_dir or settings.schemas_dir)
    return found


def to_yaml(document: dict[str, Any]) -> str:
    """Stable YAML: the models' key order, block style, no line wrapping."""
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )


def render_texts(
    settings: Settings | None = None, schemas_dir: Path | None = None
) -> dict[str, str]:
    """File name -> YAML: each EventSource and Sensor, then the RBAC (three documents)."""
    found = documents(settings, schemas_dir)
    texts = {
        f"{name}{EVENT_SOURCE_SUFFIX}": to_yaml(doc)
        for name, doc in sorted(found.event_sources.items())
    }
    texts.update(
        {f"{name}{SENSOR_SUFFIX}": to_yaml(doc) for name, doc in sorted(found.sensors.items())}
    )
    texts[RBAC_FILE] = "---\n".join(to_yaml(doc) for doc in found.rbac)
    return texts


def render_all(
    out_dir: Path, settings: Settings | None = None, schemas_dir: Path | None = None
) -> list[Path]:
    """Write every document under ``<out_dir>/sensors/`` (the same contract as
    ``workflows.render.render_all``: everything is validated first; on any violation or bad
    setting nothing is written). The paths, in order."""
    texts = render_texts(settings, schemas_dir)
    return write_rendered(texts, Path(out_dir) / FOLDER, "")
