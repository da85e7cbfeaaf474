"""The Milvus chunk collection and its document manifest.

Chunks live in ``<collection>``; one row per document lives in ``<collection>_documents`` (the
manifest), keyed by ``doc_id``. Every incremental decision reads the manifest by primary key,
because filtered queries on Milvus (Lite especially) cost hundreds of milliseconds each while
primary-key reads cost well under one.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_SUFFIX = "_documents"
TEXT_MAX_BYTES = 65535
KEYS_MAX_CHARS = 65535
# A manifest needs a vector field (Milvus requires one per collection); it is never searched.
_PLACEHOLDER_VECTOR = [0.0, 1.0]
_OVERFLOW = "*"  # chunk_keys too long to store: stale rows are then found by filter


class SchemaMismatchError(ValueError):
    """An existing collection does not fit the model or the documented schema."""


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
        self.collection = collection
        self.manifest = collection + MANIFEST_SUFFIX
        self.client = MilvusClient(uri=uri, token=token or "")
        self.has_sparse = False
        self.index_type = dense_index_type(uri, index_type)

    # -- schema ---------------------------------------------------------------------------

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def ensure(self, dimension: int) -> None:
        """Create both collections when missing; refuse ones that don't match; load them.

        Both existing ones are checked before either is created, so a refusal leaves nothing
        behind."""
        has_chunks = self.client.has_collection(self.collection)
        has_manifest = self.client.has_collection(self.manifest)
        if has_chunks:
            self._check_chunk_schema(dimension)
        if has_manifest:
            self._check_manifest_schema()
        if not has_chunks:
            self._create_chunks(dimension)
        if not has_manifest:
            self._create_manifest()
        self.client.load_collection(self.collection)
        self.client.load_collection(self.manifest)

    def open_existing(self) -> None:
        """Open for reading; the collection must exist."""
        if not self.client.has_collection(self.collection):
            raise SchemaMismatchError(
                f"collection {self.collection!r} does not exist in {self.uri}; ingest first"
            )
        fields = self._fields()
        self.has_sparse = "sparse" in fields
        self.client.load_collection(self.collection)

    def dimension(self) -> int:
        vector = self._fields().get("embedding")
        if vector is None:
            raise SchemaMismatchError(f"collection {self.collection!r} has no 'embedding' field")
        return int(vector["params"]["dim"])

    def _fields(self) -> dict[str, dict[str, Any]]:
        description = self.client.describe_collection(self.collection)
        return {f["name"]: f for f in description["fields"]}

    def _create_chunks(self, dimension: int) -> None:
        from pymilvus import DataType, Function, FunctionType

        def schema(with_sparse: bool) -> Any:
            s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
            s.add_field("doc_id", DataType.VARCHAR, max_length=36)
            s.add_field("source_uri", DataType.VARCHAR, max_length=4096)
            s.add_field("content_hash", DataType.VARCHAR, max_length=64)
            s.add_field("pipeline_fingerprint", DataType.VARCHAR, max_length=64)
            s.add_field("chunk_index", DataType.INT64)
            s.add_field("text", DataType.VARCHAR, max_length=TEXT_MAX_BYTES, enable_analyzer=True)
            s.add_field("metadata", DataType.JSON)
            s.add_field("embedding", DataType.FLOAT_VECTOR, dim=dimension)
            if with_sparse:
                s.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
                s.add_function(
                    Function(
                        name="text_bm25",
                        function_type=FunctionType.BM25,
                        input_field_names=["text"],
                        output_field_names=["sparse"],
                    )
                )
            return s

        def indexes(with_sparse: bool) -> Any:
            params = self.client.prepare_index_params()
            params.add_index("embedding", index_type=self.index_type, metric_type="COSINE")
            if with_sparse:
                params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
            return params

        try:
            self.client.create_collection(
                self.collection,
                schema=schema(True),
                index_params=indexes(True),
                consistency_level="Strong",
            )
            self.has_sparse = True
        except Exception as exc:  # a backend without BM25 functions: dense search only
            if "bm25" not in str(exc).lower() and "function" not in str(exc).lower():
                raise
            self.client.create_collection(
                self.collection,
                schema=schema(False),
                index_params=indexes(False),
                consistency_level="Strong",
            )
            self.has_sparse = False

    def _check_chunk_schema(self, dimension: int) -> None:
        fields = self._fields()
        expected = {
            "pk",
            "doc_id",
            "source_uri",
            "content_hash",
            "pipeline_fingerprint",
            "chunk_index",
            "text",
            "metadata",
            "embedding",
        }
        missing = sorted(expected - fields.keys())
        if missing:
            raise SchemaMismatchError(
                f"collection {self.collection!r} in {self.uri} is not an llm-workflows chunk "
                f"collection: it lacks {', '.join(missing)}. Use another --collection."
            )
        existing_dim = int(fields["embedding"]["params"]["dim"])
        if existing_dim != dimension:
            raise SchemaMismatchError(
                f"collection {self.collection!r} holds {existing_dim}-dimensional vectors but the "
                f"embedding model makes {dimension}-dimensional ones. Use the model the collection "
                f"was built with, or another --collection."
            )
        self.has_sparse = "sparse" in fields

    def _check_manifest_schema(self) -> None:
        description = self.client.describe_collection(self.manifest)
        fields = {f["name"] for f in description["fields"]}
        missing = sorted(set(_STATE_FIELDS) - fields)
        if missing:
            raise SchemaMismatchError(
                f"collection {self.manifest!r} in {self.uri} is not the manifest of "
                f"{self.collection!r}: it lacks {', '.join(missing)}. Use another --collection."
            )

    def _create_manifest(self) -> None:
        from pymilvus import DataType

        s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        s.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=36)
        s.add_field("source_uri", DataType.VARCHAR, max_length=4096)
        s.add_field("content_hash", DataType.VARCHAR, max_length=64)
        s.add_field("pipeline_fingerprint", DataType.VARCHAR, max_length=64)
        s.add_field("chunk_count", DataType.INT64)
        s.add_field("chunk_keys", DataType.VARCHAR, max_length=KEYS_MAX_CHARS)
        s.add_field("pending_keys", DataType.VARCHAR, max_length=KEYS_MAX_CHARS)
        s.add_field("updated_at", DataType.INT64)
        s.add_field("placeholder", DataType.FLOAT_VECTOR, dim=len(_PLACEHOLDER_VECTOR))
        params = self.client.prepare_index_params()
        params.add_index("placeholder", index_type="AUTOINDEX", metric_type="L2")
        self.client.create_collection(
            self.manifest, schema=s, index_params=params, consistency_level="Strong"
        )

    # -- manifest -------------------------------------------------------------------------

    def document_states(self, doc_ids: Sequence[str]) -> dict[str, DocumentState]:
        """Manifest records for these ids (absent ids are new documents)."""
        if not doc_ids:
            return {}
        rows = self.client.get(self.manifest, ids=list(doc_ids), output_fields=_STATE_FIELDS)
        return {row["doc_id"]: _state(row) for row in rows}

    def iter_document_states(self, uri_prefix: str) -> Iterator[DocumentState]:
        """Every manifest record whose source URI starts with the prefix, streamed."""
        iterator = self.client.query_iterator(
            self.manifest, batch_size=1000, filter="", output_fields=_STATE_FIELDS
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
                "placeholder": _PLACEHOLDER_VECTOR,
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


_STATE_FIELDS = [
    "doc_id",
    "source_uri",
    "content_hash",
    "pipeline_fingerprint",
    "chunk_count",
    "chunk_keys",
    "pending_keys",
]


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
