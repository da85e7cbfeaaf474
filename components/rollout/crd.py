"""Strict validation against a pinned CRD's ``openAPIV3Schema`` (KubeRay, KServe).

The schema inside a CustomResourceDefinition is one OpenAPI v3 schema per served version, not a
file of definitions chosen by kind: the version is picked from the document's ``apiVersion``,
then the strict rule of ``components.orchestration.schema_validation`` applies (every object
that lists ``properties`` is closed, so a misspelt key is refused; maps, int-or-string unions and
``x-kubernetes-preserve-unknown-fields`` stay open, as the API server treats them). The API
server itself prunes unknown fields silently; this check refuses them instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from components.orchestration.schema_validation import (
    SchemaViolationError,
    error_lines,
    strict_copy,
)

RAYSERVICE_CRD = "kuberay-v1.5.1.rayservices.crd.yaml"
INFERENCESERVICE_CRD = "kserve-v0.20.0.inferenceservices.crd.yaml"


def crd_path(schemas_dir: Path, name: str) -> Path:
    """The pinned CRD file ``name`` in ``schemas_dir``, or FileNotFoundError saying where."""
    path = Path(schemas_dir) / name
    if not path.is_file():
        raise FileNotFoundError(
            f"the pinned CRD {path} is missing: set LLMW_SCHEMAS_DIR to the folder holding {name}"
        )
    return path


class _Crd:
    """One CRD file: its group, kind, and a strict validator per served version (lazily)."""

    def __init__(self, path: Path) -> None:
        # libyaml when built in: the pinned CRDs are 1-2 MB, four times faster to read.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        spec = data["spec"]
        self.path = path
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self._schemas: dict[str, dict[str, Any]] = {
            version["name"]: version["schema"]["openAPIV3Schema"]
            for version in spec["versions"]
            if version.get("served")
        }
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, version: str) -> Draft202012Validator | None:
        if version not in self._schemas:
            return None
        if version not in self._validators:
            schema = strict_copy(self._schemas[version])
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            self._validators[version] = Draft202012Validator(schema)
        return self._validators[version]

    def api_versions(self) -> list[str]:
        return [f"{self.group}/{version}" for version in self._schemas]


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> _Crd:
    return _Crd(path)


def _crd(path: Path) -> _Crd:
    resolved = Path(path).resolve()
    return _load(resolved, resolved.stat().st_mtime_ns)


def crd_problems(doc: Any, path: Path) -> list[str]:
    """Every strict-schema problem with ``doc`` against the CRD at ``path``; [] when valid."""
    if not isinstance(doc, dict):
        return [f"(root): expected a mapping, got {type(doc).__name__}"]
    crd = _crd(path)
    problems = []
    if doc.get("kind") != crd.kind:
        problems.append(f"kind: expected {crd.kind!r}, got {doc.get('kind')!r}")
    api_version = str(doc.get("apiVersion", ""))
    group, _, version = api_version.rpartition("/")
    validator = crd.validator(version) if group == crd.group else None
    if validator is None:
        known = ", ".join(crd.api_versions())
        return [*problems, f"apiVersion: {api_version!r} is not served by {path.name} ({known})"]
    return [*problems, *error_lines(validator, doc)]


def assert_valid_crd(doc: dict[str, Any], path: Path) -> None:
    """Raise SchemaViolationError listing every problem unless ``doc`` is valid."""
    problems = crd_problems(doc, path)
    if problems:
        name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
        raise SchemaViolationError(problems, f"{doc.get('kind', 'document')} {name or ''}".strip())
