"""Stage a model version: a folder, a file or an ``s3://`` URI into the model store.

``stage_model`` reads each source file once. The store's manifest decides first: when the
version does not exist, the files are copied while they are hashed and the manifest made from
those hashes is published last (how each store keeps a crash from leaving half a version:
components/rollout/store.py, s3_store.py). When it exists, the files are hashed, not copied:
the same bytes are a no-op, with nothing written; other bytes are refused
(``VersionConflictError``) before anything is written. Only the bytes can tell: sizes alone
would take a changed file of the same size for the staged one. ``preview_stage`` (a plan)
hashes and compares, and writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from components.rollout.copying import WORKERS, hash_file, run_each
from components.rollout.manifest import (
    NAME_PATTERN,
    VERSION_PATTERN,
    FileEntry,
    ModelManifest,
    build_manifest,
    differences,
)
from components.rollout.sources import SourceFile, list_source
from components.rollout.store import ModelStore, VersionExistsError, open_store
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


def hash_files(
    files: list[SourceFile], settings: Settings, workers: int = WORKERS
) -> list[FileEntry]:
    """Each file's size and sha256, read once from the source, ``workers`` files at a time."""
    return run_each(lambda f: hash_file(f, settings), files, workers)


def source_uri(source: str) -> str:
    """How a manifest names its source: the ``s3://`` URI, or the local path made absolute."""
    return source if is_s3(source) else str(Path(source).resolve())


def preview_stage(
    source: str,
    name: str,
    version: str,
    settings: Settings,
    store: ModelStore | None = None,
    workers: int = WORKERS,
) -> StagePreview:
    """What staging ``source`` as ``name``/``version`` would do; writes nothing.

    Raises VersionConflictError (the version exists with other bytes), StoreError (no bucket,
    refused credentials), SourceError (nothing to stage) or ValueError (a bad name or version).
    """
    store, files = _open(source, name, version, settings, store)
    manifest = build_manifest(
        name, version, source_uri(source), hash_files(files, settings, workers)
    )
    existing = store.read_manifest(name, version)
    if existing is None:
        return StagePreview("stage", manifest, store.version_uri(name, version), store.uri, files)
    return _compare(existing, manifest, store, files)


def stage_model(
    source: str,
    name: str,
    version: str,
    settings: Settings,
    store: ModelStore | None = None,
    workers: int = WORKERS,
) -> StagePreview:
    """Stage ``source`` as ``name``/``version``, each file read once; what was done.

    Raises as ``preview_stage`` does, and SourceChangedError when a file's size changed while
    it was copied (nothing is published then).
    """
    store, files = _open(source, name, version, settings, store)
    existing = store.read_manifest(name, version)
    if existing is not None:
        hashed = build_manifest(
            name, version, source_uri(source), hash_files(files, settings, workers)
        )
        return _compare(existing, hashed, store, files)
    uri = store.version_uri(name, version)
    try:
        written = store.write_version(name, version, source_uri(source), files, workers)
    except VersionExistsError as meanwhile:
        return _compare(meanwhile.existing, meanwhile.copied, store, files)
    return StagePreview("stage", written, uri, store.uri, files)


def _open(
    source: str, name: str, version: str, settings: Settings, store: ModelStore | None
) -> tuple[ModelStore, list[SourceFile]]:
    """The store (writable) and the source's files; nothing is read yet."""
    check_name(name, version)
    store = store or open_store(settings)
    store.check_writable()
    return store, list_source(source, settings)


def _compare(
    existing: ModelManifest, staged: ModelManifest, store: ModelStore, files: list[SourceFile]
) -> StagePreview:
    """``unchanged`` when ``staged`` holds the stored version's bytes; else the refusal."""
    uri = store.version_uri(existing.name, existing.version)
    if not existing.same_bytes(staged):
        raise VersionConflictError(
            f"version {existing.version!r} of {existing.name!r} already exists in {uri} with "
            f"other bytes: {differences(existing, staged)}. A version never changes: stage a "
            "new version"
        )
    return StagePreview("unchanged", existing, uri, store.uri, files)
