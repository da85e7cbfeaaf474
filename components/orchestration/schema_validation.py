"""Strict validation of Kubernetes documents against a pinned upstream JSON schema.

The pinned Argo schemas (../shared/schemas/README.md) accept a misspelt key: no object
definition sets ``additionalProperties``. A strict check prepares the schema once per file:

- every object schema that lists ``properties`` and says nothing about ``additionalProperties``
  is closed (``additionalProperties: false``); maps (``additionalProperties: {...}``) are left
  alone, and so is every schema without ``properties``;
- ``IntOrString`` accepts an integer or a string, and ``Quantity`` a string or a number, as
  Kubernetes and Argo do (``retryStrategy.limit: 3``, ``cpu: 1``);
- the definition is picked by the document's ``kind`` (the definition whose ``kind`` property is
  that constant, e.g. ``io.argoproj.workflow.v1alpha1.WorkflowTemplate``, else the one whose
  ``x-kubernetes-group-version-kind`` names it alone: the Kubernetes kinds the Argo Events schema
  embeds, ``ServiceAccount``, ``Role``, ``RoleBinding``) rather than the schema's top-level
  ``oneOf``, so that an error points at the field that is wrong.

Errors read ``spec.templates[2].container.imagee: additional property not allowed``. Generic:
works for the Argo Workflows schema (JSON Schema 2020-12) and the Argo Events one alike. No
network: every ``$ref`` in these files is local.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

# Kubernetes unions that the Argo schemas type as plain strings.
WIDENED: dict[str, list[str]] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": ["integer", "string"],
    "io.k8s.apimachinery.pkg.api.resource.Quantity": ["string", "number"],
}
_COMBINATORS = ("allOf", "anyOf", "oneOf")


class SchemaViolationError(ValueError):
    """A document that the strict schema refuses; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str], what: str = "document") -> None:
        self.errors = list(errors)
        listing = "\n".join(f"  - {error}" for error in self.errors)
        super().__init__(f"{what} violates the schema ({len(self.errors)} errors):\n{listing}")


class UnknownKindError(SchemaViolationError):
    """The document's ``kind`` has no definition in the schema."""


def _close(schema: Any) -> None:
    """Add ``additionalProperties: false`` to every object schema listing properties (in place).

    Schemas that are combined with others (``allOf``/``anyOf``/``oneOf`` branches) are left
    open: closing one branch would refuse the properties that another branch allows.
    """
    if isinstance(schema, list):
        for item in schema:
            _close(item)
        return
    if not isinstance(schema, dict):
        return
    # Kept open: combined schemas (see above) and those Kubernetes marks as open itself.
    open_ = any(key in schema for key in _COMBINATORS)
    open_ = open_ or schema.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in schema and "additionalProperties" not in schema and not open_:
        schema["additionalProperties"] = False
    for key, value in schema.items():
        if key in ("properties", "patternProperties", "definitions", "$defs"):
            if isinstance(value, dict):
                for sub in value.values():
                    _close(sub)
        elif key in _COMBINATORS:
            continue  # see above: branches stay open
        elif key in ("enum", "const", "default", "examples", "required"):
            continue  # values, not schemas
        elif isinstance(value, dict | list):
            _close(value)


def _widen(definitions: dict[str, Any]) -> None:
    for name, types in WIDENED.items():
        if name in definitions:
            kept = {
                key: value
                for key, value in definitions[name].items()
                if key in ("description", "title")
            }
            definitions[name] = {**kept, "type": types}


def _definitions_key(schema: dict[str, Any]) -> str:
    return "$defs" if "$defs" in schema and "definitions" not in schema else "definitions"


def _kind_of(definition: Any) -> str | None:
    """The constant ``kind`` a definition stands for (top-level resources only), else None."""
    if not isinstance(definition, dict):
        return None
    return _constant_kind(definition) or _group_version_kind(definition)


def _group_version_kind(definition: dict[str, Any]) -> str | None:
    """The kind a Kubernetes definition says it is (one ``x-kubernetes-group-version-kind``)."""
    gvks = definition.get("x-kubernetes-group-version-kind")
    if isinstance(gvks, list) and len(gvks) == 1 and isinstance(gvks[0], dict):
        kind = gvks[0].get("kind")
        return kind if isinstance(kind, str) else None
    return None


def _constant_kind(definition: dict[str, Any]) -> str | None:
    kind = definition.get("properties", {}).get("kind")
    if isinstance(kind, dict):
        if isinstance(kind.get("const"), str):
            return str(kind["const"])
        enum = kind.get("enum")
        if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str):
            return enum[0]
    return None


class _StrictSchema:
    """A prepared schema file: closed, widened, with one validator per kind (built lazily)."""

    def __init__(self, path: Path) -> None:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: not a JSON schema object")
        self.path = path
        self.schema = copy.deepcopy(raw)
        key = _definitions_key(self.schema)
        self.definitions_key = key
        definitions: dict[str, Any] = self.schema.setdefault(key, {})
        _widen(definitions)
        _close(definitions)
        self.kinds = self._kinds(raw, definitions)
        self._validators: dict[str, Draft202012Validator] = {}
        self._lock = threading.Lock()

    def _kinds(self, raw: dict[str, Any], definitions: dict[str, Any]) -> dict[str, str]:
        """kind -> definition name; the top-level ``oneOf`` members first, then all others."""
        prefix = f"#/{self.definitions_key}/"
        top = [
            str(ref["$ref"])[len(prefix) :]
            for ref in raw.get("oneOf", [])
            if isinstance(ref, dict) and str(ref.get("$ref", "")).startswith(prefix)
        ]
        kinds: dict[str, str] = {}
        for name in [*top, *sorted(definitions)]:
            kind = _kind_of(definitions.get(name))
            if kind is not None and kind not in kinds:
                kinds[kind] = name
        return kinds

    def validator(self, kind: str) -> Draft202012Validator:
        name = self.kinds.get(kind)
        if name is None:
            known = ", ".join(sorted(self.kinds))
            raise UnknownKindError(
                [f"kind: {kind!r} is not defined in {self.path.name} (kinds: {known})"]
            )
        with self._lock:
            if name not in self._validators:
                root = {key: value for key, value in self.schema.items() if key not in _COMBINATORS}
                root["$ref"] = f"#/{self.definitions_key}/{name}"
                root.pop("type", None)
                # The pinned files use 2020-12 (Argo Workflows) and an unversioned draft (Argo
                # Events); their keywords mean the same in 2020-12.
                root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
                self._validators[name] = Draft202012Validator(root)
            return self._validators[name]


@functools.lru_cache(maxsize=16)
def _load(path: Path, mtime_ns: int) -> _StrictSchema:
    return _StrictSchema(path)


def strict_schema(schema_path: Path) -> _StrictSchema:
    """The prepared schema for a file, cached per file (and reloaded when the file changes)."""
    path = Path(schema_path).resolve()
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise FileNotFoundError(f"schema file {path} cannot be read: {exc}") from exc
    return _load(path, mtime)


def json_path(parts: Iterable[Any]) -> str:
    """``spec.templates[2].container`` from a jsonschema path; ``(root)`` when empty."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"


def _describe(error: ValidationError) -> Iterator[str]:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        extras = sorted(key for key in error.instance if key not in allowed)
        if extras:
            for extra in extras:
                yield f"{json_path([*path, extra])}: additional property not allowed"
            return
    if error.validator in ("anyOf", "oneOf") and error.context:
        # The branch that got furthest says most about what is wrong.
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            yield from _describe(deepest)
            return
    yield f"{json_path(path)}: {error.message}"


def validate_document(doc: dict[str, Any], schema_path: Path) -> list[str]:
    """Every strict-schema problem with ``doc`` as a readable line with its JSON path.

    The definition is chosen by ``doc["kind"]``; a missing or unknown kind is itself reported.
    An empty list means the document is valid.
    """
    if not isinstance(doc, dict):
        return [f"(root): expected a mapping, got {type(doc).__name__}"]
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        return ["kind: missing (the definition to validate against is chosen by kind)"]
    prepared = strict_schema(schema_path)
    try:
        validator = prepared.validator(kind)
    except UnknownKindError as exc:
        return exc.errors
    return error_lines(validator, doc)


def error_lines(validator: Draft202012Validator, doc: Any) -> list[str]:
    """Every problem ``validator`` finds in ``doc``, one readable line each, with its JSON path."""
    errors = sorted(
        validator.iter_errors(doc), key=lambda e: ([str(p) for p in e.absolute_path], e.message)
    )
    lines: list[str] = []
    for error in errors:
        for line in _describe(error):
            if line not in lines:
                lines.append(line)
    return lines


def strict_copy(schema: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of one JSON schema with the strict rule applied: every object schema that
    lists ``properties`` is closed, as in the files above. For a schema that is not a file of
    definitions chosen by kind, such as the ``openAPIV3Schema`` inside a CRD."""
    copied = copy.deepcopy(schema)
    _close(copied)
    return copied


def assert_valid(doc: dict[str, Any], schema_path: Path, what: str | None = None) -> None:
    """Raise SchemaViolationError listing every problem unless ``doc`` is valid."""
    errors = validate_document(doc, schema_path)
    if errors:
        name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
        label = what or f"{doc.get('kind', 'document')} {name or ''}".strip()
        raise SchemaViolationError(errors, label)
