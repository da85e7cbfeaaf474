"""Small files at a local path or an ``s3://`` URI: write, read, fetch a local copy."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from components.storage.s3 import minio_client, parse_s3_uri

if TYPE_CHECKING:
    from components.settings import Settings


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def write_text(uri: str, text: str, settings: Settings) -> None:
    """Write ``text`` (UTF-8) to ``uri`` whole: a reader sees the old file or the new one, never
    half of one (local files: a temporary file renamed into place; S3 puts are atomic)."""
    if is_s3(uri):
        bucket, key = parse_s3_uri(uri)
        data = text.encode("utf-8")
        minio_client(settings).put_object(
            bucket, key, io.BytesIO(data), len(data), content_type="application/json"
        )
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as partial:
        partial.write(text)
    os.replace(partial.name, path)


def read_text(uri: str, settings: Settings) -> str:
    if is_s3(uri):
        bucket, key = parse_s3_uri(uri)
        response = minio_client(settings).get_object(bucket, key)
        try:
            return bytes(response.read()).decode("utf-8")
        finally:
            response.close()
            response.release_conn()
    return Path(uri).read_text(encoding="utf-8")


def local_copy(uri: str, target: Path, settings: Settings) -> Path:
    """``uri`` as a local file: the path itself, or the S3 object downloaded to ``target``."""
    if not is_s3(uri):
        path = Path(uri)
        if not path.is_file():
            raise FileNotFoundError(f"{uri} does not exist")
        return path
    bucket, key = parse_s3_uri(uri)
    minio_client(settings).fget_object(bucket, key, str(target))
    return target


def upload_file(path: Path, uri: str, settings: Settings) -> None:
    """Copy a local file to an ``s3://`` URI."""
    bucket, key = parse_s3_uri(uri)
    minio_client(settings).fput_object(bucket, key, str(path))
