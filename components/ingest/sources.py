"""Document sources: a folder, a single file, or an ``s3://bucket/prefix`` read through minio."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_plus

from components.storage.s3 import parse_s3_uri

if TYPE_CHECKING:
    from components.settings import Settings

# Extension -> the file type recorded in chunk metadata. Everything else is skipped.
SUPPORTED_TYPES: dict[str, str] = {
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".txt": "txt",
    ".pdf": "pdf",
    ".docx": "docx",
}


@dataclass(frozen=True)
class DocumentRef:
    """One listed document: where it lives and what the listing knows about it."""

    uri: str  # canonical source URI; doc_id derives from it
    name: str  # path relative to the source root, used for type detection and display
    size: int
    skip_reason: str | None = None  # why a listed entry won't be ingested (type, size, kind)

    @property
    def file_type(self) -> str | None:
        return SUPPORTED_TYPES.get(PurePosixPath(self.name).suffix.lower())


class DocumentSource(Protocol):
    """A listable, readable set of documents."""

    @property
    def root_uri(self) -> str:
        """The URI every listed document's URI starts with; prune never looks outside it."""
        ...

    def list(self) -> Iterator[DocumentRef]:
        """Every document, in a stable order, streamed (never the whole listing in memory)."""
        ...

    def read(self, ref: DocumentRef) -> bytes:
        """The document's bytes."""
        ...


@dataclass(frozen=True)
class SourceFilter:
    """Include/exclude globs (matched against the path relative to the root) and a size cap."""

    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    max_file_size_bytes: int = 50 * 1024 * 1024

    def selects(self, name: str) -> bool:
        if self.include and not any(fnmatch.fnmatch(name, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatch(name, p) for p in self.exclude)

    def ref(self, uri: str, name: str, size: int) -> DocumentRef:
        """A ref, with the reason it will be skipped when it will be."""
        reason = None
        suffix = PurePosixPath(name).suffix.lower()
        if suffix not in SUPPORTED_TYPES:
            reason = f"unsupported file type {suffix or '(no extension)'}"
        elif size > self.max_file_size_bytes:
            reason = f"{size} bytes is over the {self.max_file_size_bytes}-byte limit"
        return DocumentRef(uri=uri, name=name, size=size, skip_reason=reason)


class LocalSource:
    """A folder (recursive, hidden entries ignored) or a single file. What a folder's symlinks,
    FIFOs and sockets become: ``components.ingest.local_files``."""

    def __init__(
        self, path: Path, source_filter: SourceFilter, *, follow_external_symlinks: bool = False
    ) -> None:
        self.path = path.resolve()
        if not self.path.exists():
            raise FileNotFoundError(f"source {path} does not exist")
        if self.path.is_dir() and not os.access(self.path, os.R_OK | os.X_OK):
            raise ValueError(f"source {path} cannot be listed: permission denied")
        self.filter = source_filter
        self.follow_external_symlinks = follow_external_symlinks

    @property
    def root_uri(self) -> str:
        uri = self.path.as_uri()
        return uri.rstrip("/") + "/" if self.path.is_dir() else uri

    def list(self) -> Iterator[DocumentRef]:
        from components.ingest.local_files import FolderWalk, not_regular

        if not self.path.is_dir():
            info, uri, name = self.path.stat(), self.path.as_uri(), self.path.name
            if stat.S_ISREG(info.st_mode):
                yield self.filter.ref(uri, name, info.st_size)
            else:  # a FIFO, a socket, a device: never opened
                yield DocumentRef(uri, name, 0, skip_reason=not_regular(info.st_mode))
            return
        yield from FolderWalk(self.path, self.filter, self.follow_external_symlinks).refs()

    def read(self, ref: DocumentRef) -> bytes:
        from components.ingest.local_files import read_regular

        return read_regular(_local_path(ref.uri))


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))


class S3Source:
    """Objects under ``s3://bucket/prefix``, listed and read with the minio client.

    The prefix is a folder (``docs`` lists ``docs/…``, never ``docsx/…``), unless an object has
    exactly that key: then the source is that one object, named by its basename. S3 and MinIO
    event notifications URL-encode object keys (``a+b.md`` for ``a b.md``): a key that names no
    object but whose decoded form does is that object.
    """

    def __init__(self, bucket: str, prefix: str, client: object, source_filter: SourceFilter):
        from minio import Minio

        if not isinstance(client, Minio):
            raise TypeError("S3Source needs a minio.Minio client")
        self.bucket = bucket
        self.prefix = prefix
        self.client = client
        self.filter = source_filter
        if not client.bucket_exists(bucket):
            raise FileNotFoundError(f"bucket {bucket!r} does not exist at {client._base_url.host}")
        self.single = False
        if prefix and not prefix.endswith("/"):
            decoded = unquote_plus(prefix)
            if _has_object(client, bucket, prefix):
                self.single = True
            elif decoded != prefix and _has_object(client, bucket, decoded):
                self.prefix, self.single = decoded, True

    @property
    def root_uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix if self.single else self._folder}"

    @property
    def _folder(self) -> str:
        return self.prefix if not self.prefix or self.prefix.endswith("/") else self.prefix + "/"

    def list(self) -> Iterator[DocumentRef]:
        if self.single:
            size = self.client.stat_object(self.bucket, self.prefix).size or 0
            name = PurePosixPath(self.prefix).name
            if self.filter.selects(name):
                yield self.filter.ref(f"s3://{self.bucket}/{self.prefix}", name, size)
            return
        folder = self._folder
        # minio pages through ListObjectsV2 lazily, so a large prefix streams.
        for obj in self.client.list_objects(self.bucket, prefix=folder, recursive=True):
            key = obj.object_name or ""
            if obj.is_dir or key.endswith("/"):
                continue
            name = key[len(folder) :]
            if any(part.startswith(".") for part in PurePosixPath(name).parts):
                continue
            if not self.filter.selects(name):
                continue
            yield self.filter.ref(f"s3://{self.bucket}/{key}", name, obj.size or 0)

    def read(self, ref: DocumentRef) -> bytes:
        key = ref.uri[len(f"s3://{self.bucket}/") :]
        response = self.client.get_object(self.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()


def _has_object(client: Any, bucket: str, key: str) -> bool:
    from minio.error import S3Error

    try:
        client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return False
        raise
    return True


def open_source(
    source: str, settings: Settings, source_filter: SourceFilter | None = None
) -> DocumentSource:
    """The source a SOURCE argument names: ``s3://bucket/prefix``, a folder or a file."""
    source_filter = source_filter or SourceFilter(
        include=settings.include,
        exclude=settings.exclude,
        max_file_size_bytes=settings.max_file_size_bytes,
    )
    if source.startswith("s3://"):
        from components.storage.s3 import minio_client

        bucket, prefix = parse_s3_uri(source)
        return S3Source(bucket, prefix, minio_client(settings), source_filter)
    if "://" in source and not source.startswith("file://"):
        raise ValueError(f"unsupported source {source!r}: use a path or s3://bucket/prefix")
    path = _local_path(source) if source.startswith("file://") else Path(source)
    return LocalSource(
        path, source_filter, follow_external_symlinks=settings.follow_external_symlinks
    )
