"""Search the chunk collection: dense, or hybrid (dense + BM25) where the collection has BM25.

A name that is an alias searches the collection it points to, with the query embedded by the model
recorded on that collection (``components.ingest.generations``); a model not available here is
refused, naming it, rather than searched with another model's vectors.
"""

from __future__ import annotations

from components.ingest.embedders import Embedder
from components.ingest.generations import collection_embedder
from components.settings import Settings, get_settings
from components.storage.milvus import ChunkStore, SchemaMismatchError, SearchHit


def search(
    query: str,
    *,
    collection: str | None = None,
    milvus_uri: str | None = None,
    top_k: int = 5,
    hybrid: bool = False,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
) -> list[SearchHit]:
    """The ``top_k`` chunks closest to ``query``, best first."""
    if not query.strip():
        raise ValueError("the query is empty")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    settings = settings or get_settings()
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    store = ChunkStore(
        milvus_uri or settings.milvus_uri,
        collection or settings.collection,
        token=token,
        create=False,  # a search never makes a database
    )
    try:
        store.open_existing()
        # Through an alias: the collection it points to, embedded with the model recorded on it.
        embedder = collection_embedder(store, embedder, settings)
        if store.dimension() != embedder.dimension:
            raise SchemaMismatchError(
                f"collection {store.collection!r} holds {store.dimension()}-dimensional vectors "
                f"but {embedder.name} makes {embedder.dimension}-dimensional ones"
            )
        vector = embedder.embed([query])[0]
        return store.search(vector, top_k, query_text=query if hybrid else None)
    finally:
        store.close()
