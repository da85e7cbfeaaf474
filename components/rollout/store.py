"""The model store: ``<root>/<name>/<version>/`` with the files and ``llmw-manifest.json``.

Two backends, one layout. ``settings.model_store_uri`` chooses: ``s3://bucket[/prefix]`` is MinIO
(any S3, components/rollout/s3_store.py) through the minio client, anything else a local folder
(the embedded default, here).

``write_version`` reads each source file once: it hashes the bytes as it copies them
(components/rollout/copying.py) and makes the manifest from those hashes, so the manifest
describes exactly the bytes stored. A version exists once its manifest does, and a crash at any
point leaves either no version or a complete one; a rerun converges. In a local folder,
everything, the manifest included, is written into a hidden staging folder
``<name>/.staging-<version>-<random>/``, then renamed to ``<name>/<version>/`` in one step (a
rename within one file system is atomic, and never replaces a folder that holds files). A
staging folder left by a crash is removed by the next staging of that version. Stagings of one
model take turns (a lock on ``<name>/``), so one never removes another's staging folder, and
one that finds the version published meanwhile compares bytes instead of replacing it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from components.rollout.copying import WORKERS, HashingReader, retrying, run_each
from components.rollout.manifest import (
    CHUNK,
    MANIFEST_NAME,
    FileEntry,
    ModelManifest,
    build_manifest,
    parse_manifest,
)
from components.rollout.sources import SourceFile, open_source_file
from components.storage.objects import is_s3

if TYPE_CHECKING:
    from components.settings import Settings


class StoreError(ValueError):
    """The store cannot be used as asked: a missing bucket, refused credentials, a stray folder."""


class VersionExistsError(RuntimeError):
    """The version was published by another staging while this one copied: nothing replaced."""

    def __init__(self, existing: ModelManifest, copied: ModelManifest) -> None:
        super().__init__(f"{existing.name}/{existing.version} was staged meanwhile")
        self.existing = existing
        self.copied = copied


class ModelStore(Protocol):
    """Where staged model versions live."""

    uri: str

    def version_uri(self, name: str, version: str) -> str:
        """The folder (a path or an ``s3://`` URI, ending in ``/``) holding a version's files."""
        ...

    def read_manifest(self, name: str, version: str) -> ModelManifest | None:
        """The version's manifest, or None when the version does not exist."""
        ...

    def check_writable(self) -> None:
        """StoreError unless a staging could write here (the bucket exists, credentials work)."""
        ...

    def write_version(
        self, name: str, version: str, source: str, files: list[SourceFile], workers: int = WORKERS
    ) -> ModelManifest:
        """Copy ``files`` (each read once), then publish their manifest last; it is returned."""
        ...


def open_store(settings: Settings, uri: str | None = None) -> ModelStore:
    """The store at ``uri`` (default ``settings.model_store_uri``)."""
    uri = uri or settings.model_store_uri
    if is_s3(uri):
        from components.rollout.s3_store import S3ModelStore

        return S3ModelStore(uri, settings)
    return LocalModelStore(Path(uri), settings)


class LocalModelStore:
    """A local folder: staging folder, then one atomic rename."""

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root
        self.uri = str(root)
        self._settings = settings

    def version_uri(self, name: str, version: str) -> str:
        return str(self.root.resolve() / name / version) + "/"

    def read_manifest(self, name: str, version: str) -> ModelManifest | None:
        folder = self.root / name / version
        path = folder / MANIFEST_NAME
        if path.is_file():
            return parse_manifest(path.read_text(encoding="utf-8"), str(path))
        if folder.exists():
            raise StoreError(
                f"{folder} exists but holds no {MANIFEST_NAME}: it was not staged by llmw; "
                "move it away or stage another version"
            )
        return None

    def check_writable(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the model store {self.root} is a file, not a folder")

    def write_version(
        self, name: str, version: str, source: str, files: list[SourceFile], workers: int = WORKERS
    ) -> ModelManifest:
        parent = self.root / name
        parent.mkdir(parents=True, exist_ok=True)
        with _locked(parent):  # another staging of this model waits: its staging folder is safe
            for stale in parent.glob(f".staging-{version}-*"):
                shutil.rmtree(stale, ignore_errors=True)
            staging = parent / f".staging-{version}-{uuid.uuid4().hex[:12]}"
            try:
                staging.mkdir()
                copy = retrying(lambda f: self._copy(f, staging / f.path))
                manifest = build_manifest(name, version, source, run_each(copy, files, workers))
                _write_synced(staging / MANIFEST_NAME, manifest.to_json().encode("utf-8"))
                self._publish(staging, parent / version, manifest)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            _sync_folder(parent)
        return manifest

    def _publish(self, staging: Path, target: Path, manifest: ModelManifest) -> None:
        try:
            os.rename(staging, target)
        except OSError:
            existing = self.read_manifest(manifest.name, manifest.version)
            if existing is None:
                raise
            raise VersionExistsError(existing, manifest) from None

    def _copy(self, file: SourceFile, target: Path) -> FileEntry:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_source_file(file, self._settings) as stream, open(target, "wb") as out:
            reader = HashingReader(stream, file)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
            entry = reader.entry()
            out.flush()
            os.fsync(out.fileno())
        return entry


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on ``folder`` itself (no lock file); the kernel drops it on a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
