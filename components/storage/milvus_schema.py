"""The chunk collection's and the manifest's schemas: create them, or check existing ones.

Functions over a ``MilvusClient`` and collection names, so that ``ChunkStore`` (which addresses
one chunk collection and its manifest) and whoever creates collections of its own share them.
"""

from __future__ import annotations

from typing import Any

TEXT_MAX_BYTES = 65535
KEYS_MAX_CHARS = 65535
# A manifest needs a vector field (Milvus requires one per collection); it is never searched.
PLACEHOLDER_VECTOR = [0.0, 1.0]
STATE_FIELDS = [
    "doc_id",
    "source_uri",
    "content_hash",
    "pipeline_fingerprint",
    "chunk_count",
    "chunk_keys",
    "pending_keys",
]
CHUNK_FIELDS = {
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


class SchemaMismatchError(ValueError):
    """An existing collection does not fit the model or the documented schema."""


def fields_of(client: Any, collection: str) -> dict[str, dict[str, Any]]:
    description = client.describe_collection(collection)
    return {f["name"]: f for f in description["fields"]}


def create_chunk_collection(
    client: Any,
    collection: str,
    dimension: int,
    index_type: str,
    properties: dict[str, str] | None = None,
) -> bool:
    """Create the chunk collection; returns whether it has the BM25 sparse field (a backend
    without BM25 functions gets dense search only)."""
    extra = {"properties": properties} if properties else {}
    for with_sparse in (True, False):
        try:
            client.create_collection(
                collection,
                schema=_chunk_schema(client, dimension, with_sparse),
                index_params=_chunk_indexes(client, index_type, with_sparse),
                consistency_level="Strong",
                **extra,
            )
            return with_sparse
        except Exception as exc:
            text = str(exc).lower()
            if not with_sparse or ("bm25" not in text and "function" not in text):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _chunk_schema(client: Any, dimension: int, with_sparse: bool) -> Any:
    from pymilvus import DataType, Function, FunctionType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
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


def _chunk_indexes(client: Any, index_type: str, with_sparse: bool) -> Any:
    params = client.prepare_index_params()
    params.add_index("embedding", index_type=index_type, metric_type="COSINE")
    if with_sparse:
        params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    return params


def check_chunk_schema(client: Any, collection: str, uri: str, dimension: int) -> bool:
    """Refuse a collection that is not a chunk collection or holds vectors of another
    dimension; returns whether it has the BM25 sparse field."""
    fields = fields_of(client, collection)
    missing = sorted(CHUNK_FIELDS - fields.keys())
    if missing:
        raise SchemaMismatchError(
            f"collection {collection!r} in {uri} is not an llm-workflows chunk "
            f"collection: it lacks {', '.join(missing)}. Use another --collection."
        )
    existing_dim = int(fields["embedding"]["params"]["dim"])
    if existing_dim != dimension:
        raise SchemaMismatchError(
            f"collection {collection!r} holds {existing_dim}-dimensional vectors but the "
            f"embedding model makes {dimension}-dimensional ones. Use the model the collection "
            f"was built with, or another --collection."
        )
    return "sparse" in fields


def check_manifest_schema(client: Any, manifest: str, collection: str, uri: str) -> None:
    fields = set(fields_of(client, manifest))
    missing = sorted(set(STATE_FIELDS) - fields)
    if missing:
        raise SchemaMismatchError(
            f"collection {manifest!r} in {uri} is not the manifest of "
            f"{collection!r}: it lacks {', '.join(missing)}. Use another --collection."
        )


def create_manifest(client: Any, manifest: str) -> None:
    from pymilvus import DataType

    s = client.create_schema(auto_id=False, enable_dynamic_field=False)
    s.add_field("doc_id", DataType.VARCHAR, is_primary=True, max_length=36)
    s.add_field("source_uri", DataType.VARCHAR, max_length=4096)
    s.add_field("content_hash", DataType.VARCHAR, max_length=64)
    s.add_field("pipeline_fingerprint", DataType.VARCHAR, max_length=64)
    s.add_field("chunk_count", DataType.INT64)
    s.add_field("chunk_keys", DataType.VARCHAR, max_length=KEYS_MAX_CHARS)
    s.add_field("pending_keys", DataType.VARCHAR, max_length=KEYS_MAX_CHARS)
    s.add_field("updated_at", DataType.INT64)
    s.add_field("placeholder", DataType.FLOAT_VECTOR, dim=len(PLACEHOLDER_VECTOR))
    params = client.prepare_index_params()
    params.add_index("placeholder", index_type="AUTOINDEX", metric_type="L2")
    client.create_collection(manifest, schema=s, index_params=params, consistency_level="Strong")
