"""Render the registered WorkflowTemplates to YAML, strictly validated against the pinned schema.

The output depends only on the code and the settings (namespace, images, Secret names, the
inventory): the same inputs give byte-identical files. Each document is checked against
``<schemas_dir>/argo-workflows-v4.0.5.schema.json`` made strict
(components.orchestration.schema_validation) before anything is written; a violation raises
SchemaViolationError listing every problem.

Beside them, ``workflows-rbac.k8s.yaml``: the ServiceAccounts they run as and their Roles
(``workflows.rbac``), checked against the Kubernetes definitions of the pinned Argo Events schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from components.orchestration.rendered_files import write_rendered
from components.orchestration.schema_validation import assert_valid
from components.settings import Settings, get_settings
from workflows.rbac import K8S_SCHEMA_FILE, rbac_documents
from workflows.registry import TEMPLATES, get_template

SUFFIX = ".argo.yaml"
SCHEMA_FILE = "argo-workflows-v4.0.5.schema.json"
RBAC_FILE = "workflows-rbac.k8s.yaml"


def render_template(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The WorkflowTemplate of job ``name`` as a plain dict (Hera's ``to_dict``)."""
    document: dict[str, Any] = get_template(name, settings or get_settings()).to_dict()
    return document


def to_yaml(document: dict[str, Any]) -> str:
    """Stable YAML: Hera's key order (deterministic), block style, no line wrapping."""
    return yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=10_000
    )


def schema_path(schemas_dir: Path, name: str = SCHEMA_FILE) -> Path:
    path = Path(schemas_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the pinned schema {path} is missing: set LLMW_SCHEMAS_DIR to the folder "
            f"holding {name} (../shared/schemas in this setup)"
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


def rbac_text(settings: Settings | None = None, schemas_dir: Path | None = None) -> str:
    """The validated YAML of the templates' ServiceAccounts, Roles and RoleBindings."""
    settings = settings or get_settings()
    documents = {name: render_template(name, settings) for name in sorted(TEMPLATES)}
    schema = schema_path(schemas_dir or settings.schemas_dir, K8S_SCHEMA_FILE)
    rbac = rbac_documents(documents)
    for document in rbac:
        assert_valid(document, schema)
    return "---\n".join(to_yaml(document) for document in rbac)


def render_all(
    out_dir: Path, settings: Settings | None = None, schemas_dir: Path | None = None
) -> list[Path]:
    """Write ``<out_dir>/<name>.argo.yaml`` for every registered template (sorted by name),
    then their RBAC (``RBAC_FILE``).

    Every document is validated first; on any violation nothing is written.
    """
    settings = settings or get_settings()
    texts = {name: render_text(name, settings, schemas_dir) for name in sorted(TEMPLATES)}
    rbac = rbac_text(settings, schemas_dir)
    paths = write_rendered(texts, out_dir, SUFFIX)
    return paths + write_rendered({RBAC_FILE: rbac}, out_dir, "")
