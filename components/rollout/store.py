"""The model store: ``<root>/<name>/<version>/`` with the files and ``llmw-manifest.json``.

Two backends, one layout. ``settings.model_store_uri`` chooses: ``s3://bucket[/prefix]`` is MinIO
(any S3) through the minio client, anything else a local folder (the embedded default).

A version exists once its manifest does, and a crash at any point leaves either no version or a
complete one; a rerun converges:

- local folder: everything, the manifest included, is written into a hidden staging folder
  ``<name>/.staging-<version>-<random>/``, then renamed to ``<name>/<version>/`` in one step (a
  rename within one file system is atomic). A staging folder left by a crash is removed by the
  next staging of that version.
- S3: objects go straight under ``<name>/<version>/`` (S3 has no rename, and a server-side copy
  would move every byte twice), each with its sha256 as user metadata; the manifest is written
  last, so until then the version does not exist. A rerun skips the objects whose size and sha256
  already match, rewrites the others, and deletes what an interrupted staging of other bytes left.

Every byte copied is hashed again on the way and compared with the manifest made beforehand: a
source that changed in between fails the staging before the manifest is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from components.rollout.manifest import CHUNK, MANIFEST_NAME, ModelManifest, parse_manifest
from components.rollout.sources import SourceFile, open_source_file
from components.storage.objects import is_s3
from components.storage.s3 import minio_client, parse_s3_uri

if TYPE_CHECKING:
    from components.settings import Settings

SHA_METADATA = "sha256"  # S3 user metadata (x-amz-meta-sha256) on every staged object
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


class StoreError(ValueError):
    """The store cannot be used as asked: a missing bucket, refused credentials, a stray folder."""


class SourceChangedError(RuntimeError):
    """A file's bytes while copying are not those hashed before: the source changed meanwhile."""


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

    def write_version(self, manifest: ModelManifest, files: list[SourceFile]) -> None:
        """Copy ``files`` as the version ``manifest`` describes, publishing the manifest last."""
        ...


def open_store(settings: Settings, uri: str | None = None) -> ModelStore:
    """The store at ``uri`` (default ``settings.model_store_uri``)."""
    uri = uri or settings.model_store_uri
    if is_s3(uri):
        return S3ModelStore(uri, settings)
    return LocalModelStore(Path(uri), settings)


class _HashingReader:
    """A stream that hashes and counts what is read through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def _check_copied(file: SourceFile, expected: Any, reader: _HashingReader) -> None:
    if reader.size != expected.size or reader.sha256.hexdigest() != expected.sha256:
        raise SourceChangedError(
            f"{file.location} changed while it was staged (hashed {expected.size} B sha256 "
            f"{expected.sha256[:12]}…, copied {reader.size} B sha256 "
            f"{reader.sha256.hexdigest()[:12]}…); stage it again"
        )


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

    def write_version(self, manifest: ModelManifest, files: list[SourceFile]) -> None:
        parent = self.root / manifest.name
        parent.mkdir(parents=True, exist_ok=True)
        for stale in parent.glob(f".staging-{manifest.version}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = parent / f".staging-{manifest.version}-{uuid.uuid4().hex[:12]}"
        try:
            entries = {e.path: e for e in manifest.files}
            for file in files:
                self._copy(file, entries[file.path], staging / file.path)
            _write_synced(staging / MANIFEST_NAME, manifest.to_json().encode("utf-8"))
            os.rename(staging, parent / manifest.version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _sync_folder(parent)

    def _copy(self, file: SourceFile, expected: Any, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_source_file(file, self._settings) as stream, open(target, "wb") as out:
            reader = _HashingReader(stream)
            while chunk := reader.read(CHUNK):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        _check_copied(file, expected, reader)


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


class S3ModelStore:
    """MinIO or any S3: objects under the version's prefix, the manifest last."""

    def __init__(self, uri: str, settings: Settings) -> None:
        self.bucket, prefix = parse_s3_uri(uri)
        self.prefix = prefix.strip("/")
        self.uri = uri
        self._client = minio_client(settings)
        self._settings = settings

    def _key(self, name: str, version: str, path: str = "") -> str:
        return "/".join(p for p in (self.prefix, name, version, path) if p)

    def version_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._key(name, version)}/"

    def read_manifest(self, name: str, version: str) -> ModelManifest | None:
        from minio.error import S3Error

        key = self._key(name, version, MANIFEST_NAME)
        try:
            response = self._client.get_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise _store_error(exc, self.uri) from exc
        try:
            text = bytes(response.read()).decode("utf-8")
        finally:
            response.close()
            response.release_conn()
        return parse_manifest(text, f"s3://{self.bucket}/{key}")

    def check_writable(self) -> None:
        from minio.error import S3Error

        try:
            exists = self._client.bucket_exists(self.bucket)
        except S3Error as exc:
            raise _store_error(exc, self.uri) from exc
        if not exists:
            raise StoreError(
                f"the model store's bucket {self.bucket!r} does not exist ({self.uri}): "
                "create it first (mc mb) or set LLMW_MODEL_STORE_URI"
            )

    def write_version(self, manifest: ModelManifest, files: list[SourceFile]) -> None:
        entries = {e.path: e for e in manifest.files}
        present = self._objects(manifest.name, manifest.version)
        for stray in sorted(set(present) - set(entries)):
            self._client.remove_object(
                self.bucket, self._key(manifest.name, manifest.version, stray)
            )
        for file in files:
            entry = entries[file.path]
            if present.get(file.path) == (entry.size, entry.sha256):
                continue  # left by an interrupted staging of these same bytes
            self._upload(file, entry, self._key(manifest.name, manifest.version, file.path))
        data = manifest.to_json().encode("utf-8")
        self._client.put_object(
            self.bucket,
            self._key(manifest.name, manifest.version, MANIFEST_NAME),
            io.BytesIO(data),
            len(data),
            content_type="application/json",
        )

    def _objects(self, name: str, version: str) -> dict[str, tuple[int, str | None]]:
        """What is already under the version's prefix: path -> (size, sha256 metadata)."""
        start = self._key(name, version) + "/"
        found: dict[str, tuple[int, str | None]] = {}
        for obj in self._client.list_objects(self.bucket, prefix=start, recursive=True):
            key = str(obj.object_name)
            stat = self._client.stat_object(self.bucket, key)
            sha = (stat.metadata or {}).get(f"x-amz-meta-{SHA_METADATA}")
            found[key[len(start) :]] = (int(stat.size or 0), sha)
        return found

    def _upload(self, file: SourceFile, expected: Any, key: str) -> None:
        with open_source_file(file, self._settings) as stream:
            reader: Any = _HashingReader(stream)
            self._client.put_object(
                self.bucket, key, reader, expected.size, metadata={SHA_METADATA: expected.sha256}
            )
        try:
            _check_copied(file, expected, reader)
        except SourceChangedError:
            # The object claims a sha256 its bytes don't have: never leave it for a rerun to skip.
            self._client.remove_object(self.bucket, key)
            raise


def _store_error(exc: Any, uri: str) -> Exception:
    if getattr(exc, "code", None) in _DENIED:
        return StoreError(
            f"the model store {uri} refused the credentials ({exc.code}): check "
            "LLMW_S3_ACCESS_KEY and LLMW_S3_SECRET_KEY"
        )
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
