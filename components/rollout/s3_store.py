"""The model store in MinIO or any S3: ``s3://bucket[/prefix]/<name>/<version>/`` and its manifest.

S3 has no rename, and publishing through a temporary prefix would need a server-side copy that
moves every byte a second time, so objects go straight under the version's prefix and the
manifest is written last: until it is, the version does not exist. Each object is uploaded
while its source is read and hashed (the only read), a few files at a time, and then tagged
with its sha256: an object tag can be set once the bytes are sent, user metadata could not
(it travels in the request's headers, before the bytes whose hash it would be).

A rerun after a crash deletes the objects under the prefix that the source does not hold,
keeps an object whose size and sha256 tag match its source file (hashed, not uploaded again)
and uploads the others again. A version staged from two places at the same moment is not
guarded here: one staging of a version at a time, as a rollout stages it.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from components.rollout.copying import WORKERS, HashingReader, hash_file, retrying, run_each
from components.rollout.manifest import (
    MANIFEST_NAME,
    FileEntry,
    ModelManifest,
    build_manifest,
    parse_manifest,
)
from components.rollout.sources import SourceFile, open_source_file
from components.rollout.store import StoreError
from components.storage.s3 import minio_client, parse_s3_uri

if TYPE_CHECKING:
    from components.settings import Settings

SHA_TAG = "sha256"  # the object tag every staged object carries once its upload is complete
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
_DENIED = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")


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

    def write_version(
        self, name: str, version: str, source: str, files: list[SourceFile], workers: int = WORKERS
    ) -> ModelManifest:
        present = self._objects(name, version)
        for stray in sorted(set(present) - {f.path for f in files}):
            self._client.remove_object(self.bucket, self._key(name, version, stray))

        def copy(file: SourceFile) -> FileEntry:
            key = self._key(name, version, file.path)
            return self._keep_or_upload(file, key, present.get(file.path))

        entries = run_each(retrying(copy), files, workers)
        manifest = build_manifest(name, version, source, entries)
        data = manifest.to_json().encode("utf-8")
        retrying(self._client.put_object)(
            self.bucket,
            self._key(name, version, MANIFEST_NAME),
            io.BytesIO(data),
            len(data),
            content_type="application/json",
        )
        return manifest

    def _objects(self, name: str, version: str) -> dict[str, tuple[int, str | None]]:
        """What is already under the version's prefix: path -> (size, sha256 tag)."""
        start = self._key(name, version) + "/"
        found: dict[str, tuple[int, str | None]] = {}
        for obj in self._client.list_objects(self.bucket, prefix=start, recursive=True):
            key = str(obj.object_name)
            tags: dict[str, str] = self._client.get_object_tags(self.bucket, key) or {}
            found[key[len(start) :]] = (int(obj.size or 0), tags.get(SHA_TAG))
        return found

    def _keep_or_upload(
        self, file: SourceFile, key: str, present: tuple[int, str | None] | None
    ) -> FileEntry:
        """An object a crashed staging left with these bytes is kept; else the file is uploaded."""
        if present is not None and present[1] is not None and present[0] == file.size:
            entry = hash_file(file, self._settings)
            if entry.sha256 == present[1]:
                return entry
        return self._upload(file, key)

    def _upload(self, file: SourceFile, key: str) -> FileEntry:
        from minio.commonconfig import Tags

        with open_source_file(file, self._settings) as stream:
            reader: Any = HashingReader(stream, file)  # minio reads it: read(n) is all it uses
            # minio's part size (5 MiB up to 50 GB), as fput_object: larger parts measured slower
            # against the S3 server of the bench; 3 parts in flight, WORKERS files at once.
            self._client.put_object(self.bucket, key, reader, file.size)
            try:
                entry = reader.entry()
            except BaseException:
                # It grew while read: the object holds a prefix of it. Leave nothing behind.
                self._client.remove_object(self.bucket, key)
                raise
        tags = Tags.new_object_tags()
        tags[SHA_TAG] = entry.sha256
        self._client.set_object_tags(self.bucket, key, tags)
        return entry


def _store_error(exc: Any, uri: str) -> Exception:
    if getattr(exc, "code", None) in _DENIED:
        return StoreError(
            f"the model store {uri} refused the credentials ({exc.code}): check "
            "LLMW_S3_ACCESS_KEY and LLMW_S3_SECRET_KEY"
        )
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))
