"""Stage a model version: a folder, a file or an ``s3://`` URI into the model store.

``preview_stage`` reads the source and the store and writes nothing: it hashes every file, then
compares with the version's manifest when the version exists. ``stage_model`` does the same,
then copies. Re-staging a version with the same bytes is a no-op; a version that exists with
other bytes is refused (``VersionConflictError``) before anything is written. How the store
publishes a version so that a crash never leaves half of one: components/rollout/store.py.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from components.rollout.manifest import (
    CHUNK,
    NAME_PATTERN,
    VERSION_PATTERN,
    FileEntry,
    ModelManifest,
    build_manifest,
    differences,
)
from components.rollout.sources import SourceFile, list_source, open_source_file
from components.rollout.store import ModelStore, open_store
from components.storage.objects import is_s3

if TYPE_CHECKING:
    from components.settings import Settings


class VersionConflictError(ValueError):
    """The version exists in the store with other bytes: a version never changes."""


@dataclass(frozen=True)
class StagePreview:
    """What staging would do: ``stage`` the files, or nothing (``unchanged``)."""

    action: Literal["stage", "unchanged"]
    manifest: ModelManifest  # the stored one when unchanged, else the one staging would write
    uri: str  # the version's folder in the store
    store: str
    files: list[SourceFile]

    def summary(self) -> dict[str, object]:
        """JSON-ready: what a plan shows of the staging."""
        return {
            "action": self.action,
            "into": self.uri,
            "store": self.store,
            "files": len(self.manifest.files),
            "bytes": self.manifest.total_bytes,
            "weights_bytes": self.manifest.weights_bytes,
            "digest": self.manifest.digest,
        }


def check_name(name: str, version: str) -> None:
    """ValueError unless ``name`` and ``version`` are one path segment each (see the patterns)."""
    if not re.match(NAME_PATTERN, name):
        raise ValueError(
            f"model name {name!r}: use lower-case letters, digits, '.', '_' or '-' "
            "(at most 64, starting and ending with a letter or digit)"
        )
    if not re.match(VERSION_PATTERN, version):
        raise ValueError(
            f"version {version!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64, starting and ending with a letter or digit)"
        )


def hash_files(files: list[SourceFile], settings: Settings) -> list[FileEntry]:
    """Each file's size and sha256, read once from the source."""
    entries = []
    for file in files:
        digest = hashlib.sha256()
        size = 0
        with open_source_file(file, settings) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        entries.append(FileEntry(path=file.path, size=size, sha256=digest.hexdigest()))
    return entries


def source_uri(source: str) -> str:
    """How a manifest names its source: the ``s3://`` URI, or the local path made absolute."""
    return source if is_s3(source) else str(Path(source).resolve())


def preview_stage(
    source: str, name: str, version: str, settings: Settings, store: ModelStore | None = None
) -> StagePreview:
    """What staging ``source`` as ``name``/``version`` would do; writes nothing.

    Raises VersionConflictError (the version exists with other bytes), StoreError (no bucket,
    refused credentials), SourceError (nothing to stage) or ValueError (a bad name or version).
    """
    check_name(name, version)
    store = store or open_store(settings)
    store.check_writable()
    files = list_source(source, settings)
    manifest = build_manifest(name, version, source_uri(source), hash_files(files, settings))
    existing = store.read_manifest(name, version)
    uri = store.version_uri(name, version)
    if existing is None:
        return StagePreview("stage", manifest, uri, store.uri, files)
    if not existing.same_bytes(manifest):
        raise VersionConflictError(
            f"version {version!r} of {name!r} already exists in {uri} with other bytes: "
            f"{differences(existing, manifest)}. A version never changes: stage a new version"
        )
    return StagePreview("unchanged", existing, uri, store.uri, files)


def stage_model(
    source: str, name: str, version: str, settings: Settings, store: ModelStore | None = None
) -> StagePreview:
    """Stage ``source`` as ``name``/``version`` (see ``preview_stage``); what was done."""
    store = store or open_store(settings)
    preview = preview_stage(source, name, version, settings, store)
    if preview.action == "stage":
        store.write_version(preview.manifest, preview.files)
    return preview
