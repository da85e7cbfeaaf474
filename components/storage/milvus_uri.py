"""Milvus URIs: refuse, naming the problem, one that can't work; pick the dense index for it."""

from __future__ import annotations

from pathlib import Path


class MilvusUriError(ValueError):
    """A Milvus URI that can't be used: the message names it and why."""


SERVER_SCHEMES = ("http", "https", "tcp", "unix")


def check_uri(uri: str, *, create: bool) -> None:
    """Refuse, naming the problem, a URI Milvus can't open: a scheme it doesn't speak, a Lite
    file not ending in ``.db``, a folder that isn't one or can't be written; with
    ``create=False`` also a Lite database that doesn't exist yet."""
    if "://" in uri:
        scheme = uri.split("://", 1)[0].lower()
        if scheme not in SERVER_SCHEMES:
            raise MilvusUriError(
                f"Milvus URI {uri!r}: the scheme must be one of {', '.join(SERVER_SCHEMES)}"
            )
        return
    path = Path(uri).expanduser()
    if path.suffix != ".db":
        raise MilvusUriError(
            f"Milvus URI {uri!r}: a Milvus Lite database is a file ending in .db "
            "(or give a server as http://host:19530)"
        )
    _check_writable_folder(path.resolve().parent, uri)
    if not create and not path.exists():
        raise MilvusUriError(f"no Milvus Lite database at {uri}; ingest first")


def dense_index_type(uri: str, configured: str) -> str:
    """The dense index to build: ``configured``, where "auto" is FLAT on Lite, AUTOINDEX else."""
    if configured != "auto":
        return configured
    return "AUTOINDEX" if "://" in uri else "FLAT"


def _check_writable_folder(folder: Path, uri: str) -> None:
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise MilvusUriError(f"Milvus URI {uri!r}: {existing} is not a folder")
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise MilvusUriError(
            f"Milvus URI {uri!r}: can't write in {existing} ({exc.strerror or exc})"
        ) from None
