"""A staged model version's manifest: its files with sizes and sha256, where it came from, when.

The manifest is the version: a version exists in the model store once its manifest does, and two
stagings hold the same model when their file lists (path, size, sha256) are equal, whatever
their source or time. ``digest`` names that list in one sha256 (the KFP ``Model``'s checksum).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MANIFEST_NAME = "llmw-manifest.json"
# Path segments and versions: a DNS-ish name, so that `<name>/<version>/` is one folder each.
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$"
VERSION_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,62}[A-Za-z0-9])?$"
# The files whose bytes are a model's weights (the rest is config, tokenizer, ...).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".ckpt", ".h5", ".pkl")
GB = 1_000_000_000
CHUNK = 1024 * 1024


class FileEntry(BaseModel):
    """One file of a model version: its path inside the version folder, size and sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        parts = value.split("/")
        if value.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"not a relative path inside the version folder: {value!r}")
        if value == MANIFEST_NAME:
            raise ValueError(f"{MANIFEST_NAME} is the manifest's own name in the store")
        return value


class ModelManifest(BaseModel):
    """What ``<store>/<name>/<version>/llmw-manifest.json`` holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    version: str = Field(pattern=VERSION_PATTERN)
    source: str
    created: str  # ISO 8601, UTC
    files: list[FileEntry] = Field(min_length=1)
    total_bytes: int = Field(ge=0)
    weights_bytes: int = Field(ge=0)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _consistent(self) -> ModelManifest:
        paths = [f.path for f in self.files]
        if paths != sorted(set(paths)):
            raise ValueError("files must be sorted by path, each once")
        if self.total_bytes != sum(f.size for f in self.files):
            raise ValueError("total_bytes is not the sum of the files' sizes")
        if self.digest != files_digest(self.files):
            raise ValueError("digest does not match the files")
        return self

    def same_bytes(self, other: ModelManifest) -> bool:
        """Whether both hold the same files with the same bytes (source and time aside)."""
        return self.files == other.files

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def files_digest(files: list[FileEntry]) -> str:
    """One sha256 over the sorted (path, size, sha256) lines: the model version's checksum."""
    text = "".join(f"{f.path}\t{f.size}\t{f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_bytes(files: list[FileEntry]) -> int:
    """The size of the weight files (by suffix); every file's when none looks like weights."""
    weights = [f.size for f in files if f.path.lower().endswith(WEIGHT_SUFFIXES)]
    return sum(weights) if weights else sum(f.size for f in files)


def build_manifest(name: str, version: str, source: str, files: list[FileEntry]) -> ModelManifest:
    """The manifest for ``files`` (any order), created now."""
    ordered = sorted(files, key=lambda f: f.path)
    return ModelManifest(
        name=name,
        version=version,
        source=source,
        created=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        files=ordered,
        total_bytes=sum(f.size for f in ordered),
        weights_bytes=weights_bytes(ordered),
        digest=files_digest(ordered),
    )


def parse_manifest(text: str, where: str) -> ModelManifest:
    """The manifest in ``text``, or ValueError naming ``where`` it was read."""
    try:
        data: Any = json.loads(text)
        return ModelManifest.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"the manifest {where} is not valid: {exc}") from None


def differences(old: ModelManifest, new: ModelManifest, limit: int = 3) -> str:
    """What differs between two file lists, for a refusal: ``config.json differs; …``."""
    old_files = {f.path: f for f in old.files}
    new_files = {f.path: f for f in new.files}
    lines = []
    for path in sorted(old_files.keys() | new_files.keys()):
        if path not in new_files:
            lines.append(f"{path} only in the store")
        elif path not in old_files:
            lines.append(f"{path} only in the source")
        elif old_files[path] != new_files[path]:
            a, b = old_files[path], new_files[path]
            lines.append(
                f"{path} differs (store {a.size} B sha256 {a.sha256[:12]}…, "
                f"source {b.size} B sha256 {b.sha256[:12]}…)"
            )
    more = f"; and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(lines[:limit]) + more
