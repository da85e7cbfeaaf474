"""Deterministic identifiers: document ids, chunk keys and the pipeline fingerprint."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

# uuid5 namespace for documents: the URL namespace, since canonical source URIs are URLs.
DOCUMENT_NAMESPACE = uuid.NAMESPACE_URL


def doc_id_for(source_uri: str) -> str:
    """The document id: uuid5 of its canonical source URI."""
    return str(uuid.uuid5(DOCUMENT_NAMESPACE, source_uri))


def sha256_hex(data: bytes | str) -> str:
    """Hex sha256 of bytes, or of a string's UTF-8 encoding."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def chunk_key(doc_id: str, chunk_index: int, text: str) -> str:
    """The chunk primary key: sha256(doc_id | chunk index | sha256(text))."""
    return sha256_hex(f"{doc_id}|{chunk_index}|{sha256_hex(text)}")


def pipeline_fingerprint(**settings: Any) -> str:
    """A short, stable hash of what shapes the rows (partition and chunk settings, model, dim)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return sha256_hex(canonical)[:16]


def stable_shard(key: str, shards: int) -> int:
    """The shard (0..shards-1) a key belongs to, the same on every machine and run."""
    return int(sha256_hex(key)[:12], 16) % shards
