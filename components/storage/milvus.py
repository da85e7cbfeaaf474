"""The Milvus chunk collection and its document manifest.

Chunks live in ``<collection>``; one row per document lives in ``<collection>_documents`` (the
manifest), keyed by ``doc_id``. Every incremental decision reads the manifest by primary key,
because filtered queries on Milvus (Lite especially) cost hundreds of milliseconds each while
primary-key reads cost well under one. A name that is a Milvus alias addresses the collection the
alias points to, and that collection's manifest (see ``components.ingest.generations``).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.storage.milvus_schema import (
    KEYS_MAX_CHARS,
    PLACEHOLDER_VECTOR,
    STATE_FIELDS,
    SchemaMismatchError,
    check_chunk_schema,
    check_manifest_schema,
    create_chunk_collection,
    create_manifest,
    fields_of,
)
from components.storage.milvus_uri import (  # noqa: F401  (re-exported)
    SERVER_SCHEMES,
    MilvusUriError,
    check_uri,
    dense_index_type,
)

MANIFEST_SUFFIX = "_documents"
_OVERFLOW = "*"  # chunk_keys too long to store: stale rows are then found by filter


@dataclass(frozen=True)
class DocumentState:
    """What the manifest says about one document."""

    doc_id: str
    source_uri: str
    content_hash: str
    fingerprint: str
    chunk_count: int
    chunk_keys: str  # packed, see pack_keys
    pending_keys: str  # keys a write in progress may have left; "" when none

    @property
    def complete(self) -> bool:
        return not self.pending_keys


@dataclass(frozen=True)
class SearchHit:
    score: float
    text: str
    source_uri: str
    doc_id: str
    chunk_index: int
    metadata: dict[str, Any]


def pack_keys(keys: Sequence[str]) -> str:
    """Hex sha256 keys packed as unpadded base64 (43 chars each), or the overflow marker."""
    packed = "".join(base64.b64encode(bytes.fromhex(k)).decode()[:43] for k in keys)
    return packed if len(packed) <= KEYS_MAX_CHARS else _OVERFLOW


def unpack_keys(packed: str) -> list[str] | None:
    """The keys, or None when they overflowed."""
    if packed == _OVERFLOW:
        return None
    return [base64.b64decode(packed[i : i + 43] + "=").hex() for i in range(0, len(packed), 43)]


def _quote(value: str) -> str:
    return json.dumps(value)


class ChunkStore:
    """The chunk collection and its manifest in one Milvus (Lite file or server)."""

    def __init__(
        self,
        uri: str,
        collection: str,
        token: str | None = None,
        *,
        create: bool = True,
        index_type: str = "auto",
    ) -> None:
        from pymilvus import MilvusClient

        check_uri(uri, create=create)
        if "://" not in uri:
            Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        self.uri = uri
        self.client = MilvusClient(uri=uri, token=token or "")
        self.has_sparse = False
        self.index_type = dense_index_type(uri, index_type)
        # The name readers use: an alias (then self.collection is the collection it points to,
        # resolved once, here) or a plain collection (alias None).
        self.alias: str | None = None
        self.retarget(collection)
        if collection in (self.client.list_aliases().get("aliases") or []):
            self.alias = collection
            self.retarget(self.client.describe_alias(collection)["collection_name"])

    # -- schema ---------------------------------------------------------------------------

    def retarget(self, collection: str) -> None:
        """Address another chunk collection (and its manifest) through the same client."""
        self.collection = collection
        self.manifest = collection + MANIFEST_SUFFIX

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def ensure(self, dimension: int, properties: dict[str, str] | None = None) -> None:
        """Create both collections when missing (the chunk collection with ``properties``);
        refuse ones that don't match; load them.

        Both existing ones are checked before either is created, so a refusal leaves nothing
        behind."""
        has_chunks = self.client.has_collection(self.collection)
        has_manifest = self.client.has_collection(self.manifest)
        if has_chunks:
            self.has_sparse = check_chunk_schema(self.client, self.collection, self.uri, dimension)
        if has_manifest:
            check_manifest_schema(self.client, self.manifest, self.collection, self.uri)
        if not has_chunks:
            self.has_sparse = create_chunk_collection(
                self.client, self.collection, dimension, self.index_type, properties
            )
        if not has_manifest:
            create_manifest(self.client, self.manifest)
        self.client.load_collection(self.collection)
        self.client.load_collection(self.manifest)

    def open_existing(self) -> None:
        """Open for reading; the collection must exist."""
        if not self.client.has_collection(self.collection):
            raise SchemaMismatchError(
                f"collection {self.collection!r} does not exist in {self.uri}; ingest first"
            )
        self.has_sparse = "sparse" in fields_of(self.client, self.collection)
        self.client.load_collection(self.collection)

    def dimension(self) -> int:
        vector = fields_of(self.client, self.collection).get("embedding")
        if vector is None:
            raise SchemaMismatchError(f"collection {self.collection!r} has no 'embedding' field")
        return int(vector["params"]["dim"])

    def properties(self) -> dict[str, str]:
        """The chunk collection's properties (what llm-workflows records on it, and Milvus's)."""
        description = self.client.describe_collection(self.collection)
        return {str(k): str(v) for k, v in (description.get("properties") or {}).items()}

    def set_properties(self, properties: dict[str, str]) -> None:
        self.client.alter_collection_properties(self.collection, properties=properties)

    # -- manifest -------------------------------------------------------------------------

    def document_states(self, doc_ids: Sequence[str]) -> dict[str, DocumentState]:
        """Manifest records for these ids (absent ids are new documents)."""
        if not doc_ids:
            return {}
        rows = self.client.get(self.manifest, ids=list(doc_ids), output_fields=STATE_FIELDS)
        return {row["doc_id"]: _state(row) for row in rows}

    def iter_document_states(self, uri_prefix: str) -> Iterator[DocumentState]:
        """Every manifest record whose source URI starts with the prefix, streamed."""
        iterator = self.client.query_iterator(
            self.manifest, batch_size=1000, filter="", output_fields=STATE_FIELDS
        )
        try:
            while batch := iterator.next():
                for row in batch:
                    if row["source_uri"].startswith(uri_prefix):
                        yield _state(row)
        finally:
            iterator.close()

    def write_states(self, states: Iterable[DocumentState]) -> None:
        now = int(time.time())
        rows = [
            {
                "doc_id": s.doc_id,
                "source_uri": s.source_uri,
                "content_hash": s.content_hash,
                "pipeline_fingerprint": s.fingerprint,
                "chunk_count": s.chunk_count,
                "chunk_keys": s.chunk_keys,
                "pending_keys": s.pending_keys,
                "updated_at": now,
                "placeholder": PLACEHOLDER_VECTOR,
            }
            for s in states
        ]
        if rows:
            self.client.upsert(self.manifest, rows)

    # -- chunks ---------------------------------------------------------------------------

    def upsert_chunks(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.client.upsert(self.collection, rows)

    def delete_chunks(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            self.client.delete(self.collection, ids=list(keys[start : start + 1000]))

    def delete_stale_by_filter(self, doc_id: str, content_hash: str, fingerprint: str) -> None:
        """Rows of a document from any other version: the slow path, for overflowing keys."""
        self.client.delete(
            self.collection,
            filter=(
                f"doc_id == {_quote(doc_id)} and (content_hash != {_quote(content_hash)} "
                f"or pipeline_fingerprint != {_quote(fingerprint)})"
            ),
        )

    def delete_document(self, state: DocumentState) -> None:
        """A document's rows and its manifest record."""
        keys = unpack_keys(state.chunk_keys)
        pending = unpack_keys(state.pending_keys) if state.pending_keys else []
        if keys is None or pending is None:
            self.client.delete(self.collection, filter=f"doc_id == {_quote(state.doc_id)}")
        else:
            self.delete_chunks(sorted(set(keys) | set(pending)))
        self.client.delete(self.manifest, ids=[state.doc_id])

    def count(self) -> int:
        result = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    # -- search ---------------------------------------------------------------------------

    def search(
        self, vector: list[float], top_k: int, query_text: str | None = None
    ) -> list[SearchHit]:
        """Dense search, or hybrid (dense + BM25, reciprocal-rank fused) with query_text."""
        fields = ["text", "source_uri", "doc_id", "chunk_index", "metadata"]
        if query_text is None:
            results = self.client.search(
                self.collection,
                data=[vector],
                anns_field="embedding",
                limit=top_k,
                output_fields=fields,
                search_params={"metric_type": "COSINE"},
            )
        else:
            if not self.has_sparse:
                raise SchemaMismatchError(
                    f"collection {self.collection!r} has no BM25 field (its Milvus did not "
                    "support one when it was created), so hybrid search is unavailable"
                )
            from pymilvus import AnnSearchRequest, RRFRanker

            requests = [
                AnnSearchRequest([vector], "embedding", {"metric_type": "COSINE"}, top_k * 2),
                AnnSearchRequest([query_text], "sparse", {"metric_type": "BM25"}, top_k * 2),
            ]
            results = self.client.hybrid_search(
                self.collection, requests, RRFRanker(), limit=top_k, output_fields=fields
            )
        return [
            SearchHit(
                score=float(hit["distance"]),
                text=hit["entity"]["text"],
                source_uri=hit["entity"]["source_uri"],
                doc_id=hit["entity"]["doc_id"],
                chunk_index=int(hit["entity"]["chunk_index"]),
                metadata=dict(hit["entity"].get("metadata") or {}),
            )
            for hit in results[0]
        ]

    def close(self) -> None:
        self.client.close()


def _state(row: dict[str, Any]) -> DocumentState:
    return DocumentState(
        doc_id=row["doc_id"],
        source_uri=row["source_uri"],
        content_hash=row["content_hash"],
        fingerprint=row["pipeline_fingerprint"],
        chunk_count=int(row["chunk_count"]),
        chunk_keys=row["chunk_keys"],
        pending_keys=row["pending_keys"],
    )
