"""Document ingestion: list -> fetch -> skip unchanged -> partition -> embed -> upsert -> clean up.

Write protocol per document, so that a run killed anywhere converges on rerun:
1. the manifest records the new chunk keys as ``pending`` (before any new row is written);
2. the new rows are upserted (deterministic keys, so rewriting them is harmless);
3. rows of older versions (old keys and any pending keys not in the new set) are deleted;
4. the manifest records the new version as complete.
A document is unchanged only when its manifest record is complete with the same content hash
and pipeline fingerprint. Rows are never removed before their replacements exist.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from components.ids import chunk_key, doc_id_for, sha256_hex
from components.ingest.embedders import Embedder, EmbeddingError, make_embedder
from components.ingest.generations import open_generation
from components.ingest.listing import Listing
from components.ingest.models import DocumentIssue, IngestParams, IngestReport
from components.ingest.partition import Chunk, ChunkingConfig, DocumentError
from components.ingest.partition_pool import PartitionPool
from components.ingest.sources import DocumentRef, DocumentSource, open_source
from components.settings import Settings, get_settings
from components.storage.milvus import ChunkStore, DocumentState, pack_keys, unpack_keys

# Called once per listed document with its outcome: new, changed, unchanged, failed, skipped.
ProgressCallback = Callable[[str, DocumentRef], None]

LISTING_BATCH = 32
# Chunks handed to the embedder at once, in batches of its batch size. sentence-transformers
# sorts each call's texts by length, so a larger group pads less; memory stays bounded.
EMBED_GROUP_BATCHES = 8
# Documents submitted to the partition workers ahead of the one being collected, and their bytes.
IN_FLIGHT_DOCS = 128
IN_FLIGHT_BYTES = 64 * 1024 * 1024
FETCH_THREADS = 8
ROW_OVERHEAD_BYTES = 512


class PruneRefusedError(RuntimeError):
    """Prune would have deleted too much, or the listing it would trust is empty."""


@dataclass
class _Pending:
    """A document whose rows are being written."""

    ref: DocumentRef
    doc_id: str
    content_hash: str
    old: DocumentState | None
    keys: list[str]
    unwritten: int
    marked: bool = False


@dataclass
class _Writer:
    """Embeds chunks in batches and writes rows in byte-bounded batches, then finalizes docs."""

    store: ChunkStore
    embedder: Embedder
    fingerprint: str
    max_bytes: int
    report: IngestReport
    progress: ProgressCallback | None
    to_embed: list[tuple[_Pending, int, Chunk]] = field(default_factory=list)
    rows: list[tuple[_Pending, dict[str, Any]]] = field(default_factory=list)
    row_bytes: int = 0
    docs: dict[str, _Pending] = field(default_factory=dict)

    def add(self, doc: _Pending, chunks: list[Chunk]) -> None:
        self.docs[doc.doc_id] = doc
        self.to_embed.extend((doc, i, c) for i, c in enumerate(chunks))
        if not chunks:
            self.flush_rows()
        group = self.embedder.batch_size * EMBED_GROUP_BATCHES
        while len(self.to_embed) >= group:
            self.embed(group)

    def embed_while_waiting(self) -> None:
        """About to wait for partitioning: embed the whole batches on hand meanwhile, so the
        embedder never idles while it holds a batch (at the start, above all)."""
        ready = len(self.to_embed) - len(self.to_embed) % self.embedder.batch_size
        if ready:
            self.embed(ready)

    def embed(self, count: int | None = None) -> None:
        batch = self.to_embed[: count or len(self.to_embed)]
        del self.to_embed[: len(batch)]
        if not batch:
            return
        try:
            vectors = self.embedder.embed([chunk.text for _, _, chunk in batch])
        except EmbeddingError as exc:
            for doc in {id(d): d for d, _, _ in batch}.values():
                self.fail(doc, str(exc))
            return
        for (doc, index, chunk), vector in zip(batch, vectors, strict=True):
            row = {
                "pk": doc.keys[index],
                "doc_id": doc.doc_id,
                "source_uri": doc.ref.uri,
                "content_hash": doc.content_hash,
                "pipeline_fingerprint": self.fingerprint,
                "chunk_index": index,
                "text": chunk.text,
                "metadata": chunk.metadata,
                "embedding": vector,
            }
            self.rows.append((doc, row))
            self.row_bytes += (
                len(chunk.text.encode()) + 4 * len(vector) + len(json.dumps(chunk.metadata))
            ) + ROW_OVERHEAD_BYTES
            if self.row_bytes >= self.max_bytes:
                self.flush_rows()

    def skip(self, ref: DocumentRef) -> None:
        """A listed entry that won't be ingested (its type, its size, a FIFO, a symlink…)."""
        self.report.documents.skipped += 1
        self.report.skipped.append(DocumentIssue(source_uri=ref.uri, error=ref.skip_reason or ""))
        if self.progress:
            self.progress("skipped", ref)

    def unchanged(self, ref: DocumentRef) -> None:
        self.report.documents.unchanged += 1
        if self.progress:
            self.progress("unchanged", ref)

    def fail(self, doc: _Pending, error: str) -> None:
        """Drop a document's unwritten rows; the manifest keeps it pending for the next run."""
        self.docs.pop(doc.doc_id, None)
        self.to_embed = [item for item in self.to_embed if item[0] is not doc]
        self.rows = [item for item in self.rows if item[0] is not doc]
        self.report.documents.failed += 1
        self.report.failures.append(DocumentIssue(source_uri=doc.ref.uri, error=error))
        if self.progress:
            self.progress("failed", doc.ref)

    def flush_rows(self) -> None:
        rows, self.rows, self.row_bytes = self.rows, [], 0
        unmarked = {id(d): d for d, _ in rows if not d.marked}
        self.store.write_states(self._state(d, pending=True) for d in unmarked.values())
        for doc in unmarked.values():
            doc.marked = True
        self.store.upsert_chunks([row for _, row in rows])
        for doc, _ in rows:
            doc.unwritten -= 1
        self.report.chunks += len(rows)
        # A document without chunks writes no rows, so it needs no pending mark first.
        finished = [d for d in self.docs.values() if d.unwritten == 0 and (d.marked or not d.keys)]
        for doc in finished:
            self._delete_stale(doc)
        self.store.write_states(self._state(d, pending=False) for d in finished)
        for doc in finished:
            del self.docs[doc.doc_id]
            outcome = "changed" if doc.old else "new"
            setattr(self.report.documents, outcome, getattr(self.report.documents, outcome) + 1)
            if self.progress:
                self.progress(outcome, doc.ref)

    def finish(self) -> None:
        self.embed()
        self.flush_rows()

    def _delete_stale(self, doc: _Pending) -> None:
        if doc.old is None:
            return
        old_keys = unpack_keys(doc.old.chunk_keys)
        pending = unpack_keys(doc.old.pending_keys) if doc.old.pending_keys else []
        if old_keys is None or pending is None or pack_keys(doc.keys) == "*":
            self.store.delete_stale_by_filter(doc.doc_id, doc.content_hash, self.fingerprint)
            return
        self.store.delete_chunks(sorted((set(old_keys) | set(pending)) - set(doc.keys)))

    def _state(self, doc: _Pending, pending: bool) -> DocumentState:
        if pending:
            # Until complete, the record keeps the old version's hash, so the doc is not skipped.
            old = doc.old
            return DocumentState(
                doc_id=doc.doc_id,
                source_uri=doc.ref.uri,
                content_hash=old.content_hash if old else "",
                fingerprint=old.fingerprint if old else "",
                chunk_count=old.chunk_count if old else 0,
                chunk_keys=old.chunk_keys if old else "",
                pending_keys=_merge_packed(doc.keys, old.pending_keys if old else ""),
            )
        return DocumentState(
            doc_id=doc.doc_id,
            source_uri=doc.ref.uri,
            content_hash=doc.content_hash,
            fingerprint=self.fingerprint,
            chunk_count=len(doc.keys),
            chunk_keys=pack_keys(doc.keys),
            pending_keys="",
        )


def _merge_packed(keys: list[str], packed_previous: str) -> str:
    previous = unpack_keys(packed_previous) if packed_previous else []
    if previous is None:
        return "*"
    merged = list(dict.fromkeys([*previous, *keys]))
    return pack_keys(merged)


def chunking_config(settings: Settings) -> ChunkingConfig:
    return ChunkingConfig(
        strategy=settings.chunking_strategy,
        max_characters=settings.chunk_max_characters,
        overlap=settings.chunk_overlap,
    )


def open_store(params: IngestParams, settings: Settings) -> ChunkStore:
    token = settings.milvus_token.get_secret_value() if settings.milvus_token else None
    uri = params.milvus_uri or settings.milvus_uri
    return ChunkStore(uri, params.collection, token=token, index_type=settings.milvus_index_type)


def ingest(
    params: IngestParams,
    settings: Settings | None = None,
    *,
    documents: Iterable[DocumentRef] | None = None,
    progress: ProgressCallback | None = None,
    embedder: Embedder | None = None,
) -> IngestReport:
    """Ingest ``params.source`` into Milvus; prune afterwards when asked.

    ``documents``: ingest these (a shard's slice of the plan step's listing) instead of listing
    the source; prune then needs the whole listing (``prune_listing``), so it is refused here.
    """
    settings = settings or get_settings()
    if params.prune and documents is not None:
        raise ValueError("prune needs the complete listing: run prune_listing after the shards")
    started = time.perf_counter()
    report = IngestReport()
    source = open_source(params.source, settings)
    store = open_store(params, settings)
    try:
        config = chunking_config(settings)
        # An alias or a generation is written with the model recorded on it (generations.py).
        embedder, fingerprint = open_generation(
            store, embedder, settings, config.fingerprint_fields(), source.root_uri, make_embedder
        )
        writer = _Writer(
            store, embedder, fingerprint, settings.milvus_write_batch_bytes, report, progress
        )
        listed: set[str] = set()
        pool = PartitionPool(settings.partition_workers, settings.partition_timeout_s)
        refs = source.list() if documents is None else iter(documents)
        try:
            _run(source, refs, _Work(store, pool, writer, config, fingerprint, settings), listed)
        finally:
            pool.close()
        if params.prune:
            try:
                report.documents.deleted = prune(store, source.root_uri, listed, settings)
            except PruneRefusedError as exc:
                report.prune_error = str(exc)
    finally:
        store.close()
    report.seconds = time.perf_counter() - started
    return report


@dataclass
class _Work:
    """What one run's documents go through: the store, the partition workers, the writer."""

    store: ChunkStore
    pool: PartitionPool
    writer: _Writer
    config: ChunkingConfig
    fingerprint: str
    settings: Settings
    in_flight: deque[tuple[_Pending, Future[list[Chunk]], int]] = field(default_factory=deque)
    in_flight_bytes: int = 0

    def submit(self, doc: _Pending, data: bytes) -> None:
        """Queue a document for partitioning; collect the oldest while too many are queued.

        While this thread embeds a group (many seconds), it submits nothing: the workers can
        only partition what is already queued. Queue enough documents to fill the next group,
        or the embedder waits for them afterwards; bounded by bytes so large files stay few."""
        future = self.pool.submit(data, doc.ref.name, doc.ref.file_type or "", self.config)
        self.in_flight.append((doc, future, len(data)))
        self.in_flight_bytes += len(data)
        self.drain(IN_FLIGHT_DOCS if self.settings.partition_workers > 0 else 2)

    def drain(self, limit: int, byte_limit: int = IN_FLIGHT_BYTES) -> None:
        """Collect partitioned documents (oldest first) until at most ``limit`` are queued."""
        while len(self.in_flight) > limit or (
            len(self.in_flight) > 1 and self.in_flight_bytes > byte_limit
        ):
            doc, future, size = self.in_flight.popleft()
            self.in_flight_bytes -= size
            if not future.done():
                self.writer.embed_while_waiting()
            try:
                chunks = self.pool.result(future)
            except DocumentError as exc:
                self.writer.fail(doc, str(exc))
                continue
            doc.keys = [chunk_key(doc.doc_id, i, c.text) for i, c in enumerate(chunks)]
            doc.unwritten = len(chunks)
            self.writer.add(doc, chunks)


def _run(
    source: DocumentSource, refs: Iterator[DocumentRef], work: _Work, listed: set[str]
) -> None:
    writer = work.writer
    with ThreadPoolExecutor(FETCH_THREADS) as fetchers:
        for batch in _batched(((ref, doc_id_for(ref.uri)) for ref in refs), LISTING_BATCH):
            wanted: list[tuple[DocumentRef, str]] = []
            for ref, doc_id in batch:
                listed.add(doc_id)
                writer.report.documents.seen += 1
                if ref.skip_reason:
                    writer.skip(ref)
                else:
                    wanted.append((ref, doc_id))
            fetched = list(fetchers.map(lambda item: _fetch(source, item[0]), wanted))
            states = work.store.document_states([doc_id for _, doc_id in wanted])
            for (ref, doc_id), (data, error) in zip(wanted, fetched, strict=True):
                old = states.get(doc_id)
                if data is None:
                    writer.fail(_Pending(ref, doc_id, "", old, [], 0), error or "unreadable")
                    continue
                content_hash = sha256_hex(data)
                if (
                    old is not None
                    and old.complete
                    and old.content_hash == content_hash
                    and old.fingerprint == work.fingerprint
                ):
                    writer.unchanged(ref)
                    continue
                work.submit(_Pending(ref, doc_id, content_hash, old, [], 0), data)
        work.drain(0, 0)
    writer.finish()


def _fetch(source: DocumentSource, ref: DocumentRef) -> tuple[bytes | None, str | None]:
    try:
        return source.read(ref), None
    except Exception as exc:  # one unreadable object must not stop the run
        return None, f"could not read: {type(exc).__name__}: {exc}"


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while batch := list(islice(items, size)):
        yield batch


def prune(store: ChunkStore, root_uri: str, listed: set[str], settings: Settings) -> int:
    """Delete documents under ``root_uri`` that the complete listing no longer holds."""
    if not listed:
        raise PruneRefusedError(
            f"refusing to prune: the listing of {root_uri} is empty (a wrong path or an "
            "unreachable source would otherwise delete everything)"
        )
    known = 0
    gone: list[DocumentState] = []
    for state in store.iter_document_states(root_uri):
        known += 1
        if state.doc_id not in listed:
            gone.append(state)
    if known and len(gone) / known > settings.prune_max_fraction:
        raise PruneRefusedError(
            f"refusing to prune {len(gone)} of {known} documents under {root_uri}: more than "
            f"{settings.prune_max_fraction:.0%} (LLMW_PRUNE_MAX_FRACTION)"
        )
    for state in gone:
        store.delete_document(state)
    return len(gone)


def prune_listing(params: IngestParams, listing: Listing, settings: Settings | None = None) -> int:
    """Prune as a step of its own, after sharded ingestion, against the plan step's listing."""
    settings = settings or get_settings()
    store = open_store(params, settings)
    try:
        if not store.exists():
            return 0
        store.ensure(store.dimension())
        return prune(store, listing.root_uri, listing.doc_ids(), settings)
    finally:
        store.close()
