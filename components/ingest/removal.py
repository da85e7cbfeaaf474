"""Document removal: take documents' rows (chunks and manifest record) out of the collection.

Each URI is brought to the source URI ingestion records (``canonical_uri``), whose uuid5 is the
document's ``doc_id`` (``components.ids.doc_id_for``); the manifest, read by those ids, says which
documents are there, and ``ChunkStore.delete_document`` deletes each one's chunks, then its
record. A document that isn't there (never ingested, already removed, no such collection or
Milvus Lite file) is reported ``not_found``: a retried or repeated removal converges and is not
an error. A run killed between the two deletes leaves the record, so the next run finds the
document and finishes it.

Nothing here reads the source: a removed object can no longer be read, and its id derives from
its URI alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from components.ids import doc_id_for
from components.ingest.models import RemovalParams, RemovalReport, RemovedDocument
from components.settings import Settings, get_settings
from components.storage.milvus import ChunkStore, DocumentState, check_uri

# Manifest records read by primary key at once.
READ_BATCH = 1000


def canonical_uri(uri: str) -> str:
    """The source URI ingestion records for the document ``uri`` names (``RemovalParams``
    checked its shape):

    - ``s3://bucket/key``: as it is (ingestion records the object's key as listed);
    - ``file:///path``: percent-decoded and encoded again as ``Path.as_uri`` does, so that
      ``file:///a%20b.md`` and ``file:///a b.md`` are the same document;
    - a path: made absolute (from the working folder), the folder it is in resolved as ingestion
      resolves its source folder (symlinks followed), the name kept; ``file://`` of that.
    """
    if uri.startswith("s3://"):
        return uri
    if uri.startswith("file://"):
        return Path(unquote(uri[len("file://") :])).as_uri()
    path = Path(uri).expanduser().absolute()
    return (path.parent.resolve() / path.name).as_uri()


def remove_documents(params: RemovalParams, settings: Settings | None = None) -> RemovalReport:
    """Remove every document ``params.uris`` names from ``params.collection``; the report says,
    per document, whether it was removed or not found. Bad input (a Milvus URI that can't work,
    a collection that isn't an llm-workflows one) raises a ValueError; a service failure
    raises as it is (retrying converges)."""
    settings = settings or get_settings()
    started = time.perf_counter()
    report = RemovalReport(collection=params.collection)
    wanted: dict[str, RemovedDocument] = {}  # by doc_id, first URI naming it
    for uri in params.uris:
        source_uri = canonical_uri(uri)
        doc_id = doc_id_for(source_uri)
        if doc_id not in wanted:
            wanted[doc_id] = RemovedDocument(
                uri=uri, source_uri=source_uri, doc_id=doc_id, outcome="not_found"
            )
    found = _remove(params, settings, list(wanted))
    for doc_id, entry in wanted.items():
        state = found.get(doc_id)
        if state is not None:
            entry.outcome, entry.chunks = "removed", state.chunk_count
            report.removed += 1
            report.chunks += state.chunk_count
        else:
            report.not_found += 1
        report.documents.append(entry)
    report.seconds = time.perf_counter() - started
    return report


def _remove(
    params: RemovalParams, settings: Settings, doc_ids: list[str]
) -> dict[str, DocumentState]:
    """Delete the documents among ``doc_ids`` that the manifest holds; their records."""
    uri = params.milvus_uri or settings.milvus_uri
    check_uri(uri, create=True)  # a scheme Milvus doesn't speak, a Lite file not ending in .db
    if "://" not in uri and not Path(uri).expanduser().exists():
        return {}  # no Milvus Lite database: nothing to remove, and none is created
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    store = ChunkStore(uri, params.collection, token=token, index_type=settings.milvus_index_type)
    try:
        if not store.exists():
            return {}
        # Checks both collections are llm-workflows' (SchemaMismatchError) and loads them.
        store.ensure(store.dimension())
        found: dict[str, DocumentState] = {}
        for start in range(0, len(doc_ids), READ_BATCH):
            found.update(store.document_states(doc_ids[start : start + READ_BATCH]))
        for doc_id in doc_ids:
            if doc_id in found:
                store.delete_document(found[doc_id])
        return found
    finally:
        store.close()


# --- the engine step: JSON in, JSON out --------------------------------------------------------


def removal_step(params: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """The ``document-removal`` job's one step: the parameters as a dict (checked against
    RemovalParams, a ValidationError being bad input), the report as a dict."""
    return remove_documents(RemovalParams.model_validate(params), settings).model_dump()


def removal_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for the Kubeflow UI."""
    model = RemovalReport.model_validate(report)
    return {
        "documents_removed": float(model.removed),
        "documents_not_found": float(model.not_found),
        "chunks_removed": float(model.chunks),
        "seconds": round(model.seconds, 3),
    }


def removal_markdown(report: dict[str, Any]) -> str:
    """A Markdown summary of the run, for the Kubeflow UI and Argo's outputs."""
    model = RemovalReport.model_validate(report)
    lines = [
        "# Document removal",
        "",
        f"From collection `{model.collection}`: **{model.removed}** removed "
        f"({model.chunks} chunks), **{model.not_found}** not found.",
        "",
        "| document | outcome | chunks |",
        "| --- | --- | ---: |",
        *(
            f"| `{d.source_uri.replace('|', '%7C')}` | {d.outcome.replace('_', ' ')} | {d.chunks} |"
            for d in model.documents
        ),
    ]
    return "\n".join(lines) + "\n"
