"""Deterministic identifiers: document ids, chunk keys and the pipeline fingerprint."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count``: the documents whose doc_id hashes to it."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` -> Shard(I, N)."""
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise ValueError(f"shard must look like I/N (for example 0/4), got {text!r}") from None
        if not 0 <= shard.index < shard.count:
            raise ValueError(f"shard {text!r}: need 0 <= I < N")
        return shard

    def owns(self, doc_id: str) -> bool:
        return stable_shard(doc_id, self.count) == self.index
