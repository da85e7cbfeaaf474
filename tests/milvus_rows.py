"""Read back everything a run left in Milvus, for row-for-row comparisons."""

from __future__ import annotations

from typing import Any

from components.storage.milvus import ChunkStore

CHUNK_FIELDS = ["pk", "doc_id", "source_uri", "content_hash", "chunk_index", "text", "metadata"]
MANIFEST_FIELDS = ["doc_id", "source_uri", "content_hash", "chunk_count", "pending_keys"]


def _all(store: ChunkStore, collection: str, fields: list[str]) -> list[dict[str, Any]]:
    if not store.client.has_collection(collection):
        return []
    store.client.load_collection(collection)
    iterator = store.client.query_iterator(
        collection, batch_size=1000, filter="", output_fields=fields
    )
    rows: list[dict[str, Any]] = []
    while batch := iterator.next():
        rows.extend({k: row[k] for k in fields} for row in batch)
    iterator.close()
    return rows


def read_rows(milvus_uri: str, collection: str = "documents") -> list[dict[str, Any]]:
    """Every chunk row (without vectors), sorted by primary key."""
    store = ChunkStore(milvus_uri, collection)
    try:
        return sorted(_all(store, collection, CHUNK_FIELDS), key=lambda r: r["pk"])
    finally:
        store.close()


def read_manifest(milvus_uri: str, collection: str = "documents") -> list[dict[str, Any]]:
    """Every manifest record, sorted by doc_id."""
    store = ChunkStore(milvus_uri, collection)
    try:
        rows = _all(store, store.manifest, MANIFEST_FIELDS)
        return sorted(rows, key=lambda r: r["doc_id"])
    finally:
        store.close()
