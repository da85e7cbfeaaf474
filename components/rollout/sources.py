"""Where a model to stage comes from: a folder, a single file, or an ``s3://`` URI.

Each source lists its files once (a path relative to the model's folder, a size) and opens each
as a binary stream, so that staging can hash everything before it writes anything and stream
again while it copies. A folder is read recursively; hidden files and folders (``.git``,
``.cache``) are left out, and so is a store's own ``llmw-manifest.json``; symlinks to files are
followed (a Hugging Face snapshot is made of them), symlinked folders are not. An
``s3://bucket/prefix`` is every object under the prefix (a folder), or the one object whose key
it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from components.rollout.manifest import MANIFEST_NAME
from components.storage.objects import is_s3
from components.storage.s3 import minio_client, parse_s3_uri

if TYPE_CHECKING:
    from components.settings import Settings


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its path inside the model folder, its size, how to read it."""

    path: str
    size: int
    location: str  # a local path or an s3:// URI: what `open_source_file` reads


class SourceError(ValueError):
    """The model source cannot be staged: missing, empty, or holding something unreadable."""


def list_source(source: str, settings: Settings) -> list[SourceFile]:
    """Every file of ``source``, sorted by path; SourceError when there is none."""
    files = _list_s3(source, settings) if is_s3(source) else _list_local(Path(source))
    # A version folder of a model store as the source: its manifest is the store's, not a file.
    files = [f for f in files if f.path != MANIFEST_NAME]
    if not files:
        raise SourceError(f"the model source {source} holds no file to stage")
    return sorted(files, key=lambda f: f.path)


def _list_local(root: Path) -> list[SourceFile]:
    if not root.exists():
        raise SourceError(f"the model source {root} does not exist")
    if root.is_file():
        return [SourceFile(root.name, root.stat().st_size, str(root))]
    if not root.is_dir():
        raise SourceError(f"the model source {root} is neither a file nor a folder")
    files = []
    for path in _walk(root):
        if not path.is_file():
            raise SourceError(f"{path} is a broken link or not a regular file")
        files.append(SourceFile(path.relative_to(root).as_posix(), path.stat().st_size, str(path)))
    return files


def _walk(folder: Path) -> Iterator[Path]:
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)
        elif not entry.is_dir():
            yield entry


def _list_s3(uri: str, settings: Settings) -> list[SourceFile]:
    bucket, prefix = parse_s3_uri(uri)
    client = minio_client(settings)
    if not client.bucket_exists(bucket):
        raise SourceError(f"the model source {uri}: bucket {bucket!r} does not exist")
    folder = prefix.rstrip("/")
    files = []
    if folder:
        exact = _stat_or_none(client, bucket, folder)
        if exact is not None:
            name = folder.rsplit("/", 1)[-1]
            return [SourceFile(name, int(exact.size or 0), f"s3://{bucket}/{folder}")]
    start = f"{folder}/" if folder else ""
    for obj in client.list_objects(bucket, prefix=start, recursive=True):
        key = str(obj.object_name)
        if obj.is_dir or key.endswith("/"):
            continue
        relative = key[len(start) :]
        if any(part.startswith(".") for part in relative.split("/")):
            continue
        files.append(SourceFile(relative, int(obj.size or 0), f"s3://{bucket}/{key}"))
    return files


def _stat_or_none(client: Any, bucket: str, key: str) -> Any:
    from minio.error import S3Error

    try:
        return client.stat_object(bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return None
        raise


@contextmanager
def open_source_file(file: SourceFile, settings: Settings) -> Iterator[BinaryIO]:
    """``file``'s bytes as a binary stream (``read(n)``), closed afterwards."""
    if not is_s3(file.location):
        with open(file.location, "rb") as handle:
            yield handle
        return
    bucket, key = parse_s3_uri(file.location)
    response: Any = minio_client(settings).get_object(bucket, key)
    try:
        yield response
    finally:
        response.close()
        response.release_conn()
