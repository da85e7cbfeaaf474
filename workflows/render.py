"""Render the registered WorkflowTemplates to YAML, strictly validated against the pinned schema.

The output depends only on the code and the settings (namespace, images, Secret names, the
inventory): the same inputs give byte-identical files. Each document is checked against
``<schemas_dir>/argo-workflows-v4.0.5.schema.json`` made strict
(components.orchestration.schema_validation) before anything is written; a violation raises
SchemaViolationError listing every problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.orchestration.rendered_files import write_rendered
from components.orchestration.schema_validation import assert_valid
from components.settings import Settings, get_settings
from workflows.registry import TEMPLATES, get_template

SUFFIX = ".argo.yaml"
SCHEMA_FILE = "argo-workflows-v4.0.5.schema.json"


def render_template(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The WorkflowTemplate of job ``name`` as a plain dict (Hera's ``to_dict``)."""
    document: dict[str, Any] = get_template(name, settings or get_settings()).to_dict()
    return document


def to_yaml(document: dict[str, Any]) -> str:
    """Stable YAML: Hera's key order (deterministic), block style, no line wrapping."""
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )


def schema_path(schemas_dir: Path) -> Path:
    path = Path(schemas_dir) / SCHEMA_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the pinned Argo schema {path} is missing: set LLMW_SCHEMAS_DIR to the folder "
            f"holding {SCHEMA_FILE} (../shared/schemas in this setup)"
        )
    return path


def render_text(
    name: str, settings: Settings | None = None, schemas_dir: Path | None = None
) -> str:
    """The validated YAML of one WorkflowTemplate (schemas from ``settings.schemas_dir``)."""
    settings = settings or get_settings()
    document = render_template(name, settings)
    assert_valid(
        document, schema_path(schemas_dir or settings.schemas_dir), f"WorkflowTemplate {name}"
    )
    return to_yaml(document)


def render_all(
    out_dir: Path, settings: Settings | None = None, schemas_dir: Path | None = None
) -> list[Path]:
    """Write ``<out_dir>/<name>.argo.yaml`` for every registered template (sorted by name).

    Every document is validated first; on any violation nothing is written.
    """
    settings = settings or get_settings()
    texts = {name: render_text(name, settings, schemas_dir) for name in sorted(TEMPLATES)}
    return write_rendered(texts, out_dir, SUFFIX)
