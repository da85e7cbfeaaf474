"""The MinIO/S3 client, configured from settings (works against MinIO and any S3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minio import Minio

    from components.settings import Settings


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, prefix)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"s3 URI has no bucket: {uri!r}")
    return bucket, prefix


def minio_client(settings: Settings) -> Minio:
    """A minio client for ``settings.s3_endpoint`` (host:port, or a URL whose scheme sets TLS)."""
    from minio import Minio

    endpoint = settings.s3_endpoint
    secure = settings.s3_secure
    if endpoint.startswith(("http://", "https://")):
        secure = endpoint.startswith("https://")
        endpoint = endpoint.split("://", 1)[1].rstrip("/")
    return Minio(
        endpoint,
        access_key=settings.s3_access_key.get_secret_value() if settings.s3_access_key else None,
        secret_key=settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else None,
        secure=secure,
        region=settings.s3_region,
    )
