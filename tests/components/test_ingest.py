"""Ingestion end to end on Milvus Lite and the packaged MiniLM model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.ids import chunk_key, doc_id_for
from components.ingest.models import IngestParams, IngestReport
from components.ingest.partition import partition_document
from components.ingest.run import ingest
from components.ingest.sources import SUPPORTED_TYPES
from components.storage.milvus import SchemaMismatchError
from testing.documents import topic, write_broken, write_document
from tests.milvus_rows import read_manifest, read_rows

TYPES = [".md", ".html", ".txt", ".pdf", ".docx"]


def corpus(folder: Path, count: int = 5) -> list[Path]:
    names = ["khelben", "drizzt", "danilo", "elminster", "storm", "bruenor", "catti", "milvus"]
    return [
        write_document(
            folder / f"{names[i % len(names)]}-{i}{TYPES[i % 5]}",
            names[i % 8],
            topic(names[i % len(names)], words=120),
        )
        for i in range(count)
    ]


def run(source: Path, settings: Any, embedder: Any, **params: Any) -> IngestReport:
    return ingest(IngestParams(source=str(source), **params), settings, embedder=embedder)


def test_every_type_is_ingested_then_a_rerun_writes_nothing(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings()
    files = corpus(tmp_path / "docs")

    first = run(tmp_path / "docs", settings, minilm)
    assert first.documents.seen == first.documents.new == 5
    assert first.documents.failed == first.documents.skipped == 0
    rows = read_rows(settings.milvus_uri)
    assert len(rows) == first.chunks > 5
    assert {r["metadata"]["file_type"] for r in rows} == {"md", "html", "txt", "pdf", "docx"}
    for path in files:
        doc_id = doc_id_for(path.resolve().as_uri())
        mine = sorted((r for r in rows if r["doc_id"] == doc_id), key=lambda r: r["chunk_index"])
        assert mine, f"{path.name} has no rows"
        assert [r["pk"] for r in mine] == [
            chunk_key(doc_id, r["chunk_index"], r["text"]) for r in mine
        ]

    second = run(tmp_path / "docs", settings, minilm)
    assert second.documents.unchanged == 5
    assert second.chunks == 0
    assert read_rows(settings.milvus_uri) == rows


def test_a_changed_document_ends_with_exactly_its_new_chunks(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings(chunk_max_characters=300, chunk_overlap=0)
    path = write_document(tmp_path / "docs" / "nodes.md", "Nodes", topic("khelben", words=300))
    write_document(tmp_path / "docs" / "other.md", "Other", topic("drizzt"))
    run(tmp_path / "docs", settings, minilm)
    before = read_rows(settings.milvus_uri)

    write_document(path, "Nodes", topic("danilo", words=90))  # shorter, different text
    report = run(tmp_path / "docs", settings, minilm)
    assert (report.documents.changed, report.documents.unchanged) == (1, 1)

    doc_id = doc_id_for(path.resolve().as_uri())
    expected = partition_document(path.read_bytes(), path.name, "md", _config(settings))
    rows = [r for r in read_rows(settings.milvus_uri) if r["doc_id"] == doc_id]
    assert sorted(r["text"] for r in rows) == sorted(c.text for c in expected)
    assert {r["pk"] for r in rows} == {chunk_key(doc_id, i, c.text) for i, c in enumerate(expected)}
    others = [r for r in before if r["doc_id"] != doc_id]
    assert [r for r in read_rows(settings.milvus_uri) if r["doc_id"] != doc_id] == others
    manifest = {m["doc_id"]: m for m in read_manifest(settings.milvus_uri)}
    assert manifest[doc_id]["chunk_count"] == len(expected)
    assert manifest[doc_id]["pending_keys"] == ""


def _config(settings: Any) -> Any:
    from components.ingest.run import chunking_config

    return chunking_config(settings)


def test_changing_chunk_settings_reembeds_everything(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    corpus(tmp_path / "docs", 3)
    run(tmp_path / "docs", make_settings(), minilm)
    report = run(tmp_path / "docs", make_settings(chunk_max_characters=500), minilm)
    assert report.documents.changed == 3
    assert {r["chunk_index"] for r in read_rows(make_settings().milvus_uri)}


def test_broken_files_are_recorded_and_the_rest_ingested(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings()
    docs = tmp_path / "docs"
    corpus(docs, 3)
    broken = write_broken(docs)

    report = run(docs, settings, minilm)

    failed = {f.source_uri.rsplit("/", 1)[-1]: f.error for f in report.failures}
    assert set(failed) == {"corrupt.pdf", "truncated.docx", "binary.txt"}
    assert "corrupt PDF" in failed["corrupt.pdf"]
    assert "binary content" in failed["binary.txt"]
    assert [s.source_uri.rsplit("/", 1)[-1] for s in report.skipped] == ["image.png"]
    assert "unsupported file type .png" in report.skipped[0].error
    # The three good ones, the empty one (zero chunks) and the latin-1 one are in.
    assert report.documents.new == 5
    assert report.documents.seen == 3 + len(broken)
    texts = " ".join(r["text"] for r in read_rows(settings.milvus_uri))
    assert "Zürich" in texts

    again = run(docs, settings, minilm)
    assert again.documents.failed == 3, "failures are retried, and fail again, on every run"
    assert again.documents.unchanged == 5


def test_prune_deletes_documents_that_are_gone(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings()
    files = corpus(tmp_path / "docs", 5)
    run(tmp_path / "docs", settings, minilm)

    files[0].unlink()
    report = run(tmp_path / "docs", settings, minilm, prune=True)
    assert report.documents.deleted == 1
    assert report.prune_error is None
    gone = doc_id_for(files[0].resolve().as_uri())
    assert all(r["doc_id"] != gone for r in read_rows(settings.milvus_uri))
    assert gone not in {m["doc_id"] for m in read_manifest(settings.milvus_uri)}


def test_prune_refuses_an_empty_listing_and_a_mass_delete(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings()
    files = corpus(tmp_path / "docs", 5)
    run(tmp_path / "docs", settings, minilm)
    rows = read_rows(settings.milvus_uri)

    for path in files[:3]:  # 60 % gone: over the 50 % default
        path.unlink()
    report = run(tmp_path / "docs", settings, minilm, prune=True)
    assert report.prune_error is not None and "3 of 5" in report.prune_error
    assert len(read_rows(settings.milvus_uri)) == len(rows)

    for path in files[3:]:
        path.unlink()
    report = run(tmp_path / "docs", settings, minilm, prune=True)
    assert report.prune_error is not None and "empty" in report.prune_error
    assert len(read_rows(settings.milvus_uri)) == len(rows)

    # With a higher threshold the user can still prune it all deliberately... except an empty
    # listing, which is never trusted.
    relaxed = make_settings(prune_max_fraction=1.0)
    write_document(tmp_path / "docs" / "keep.md", "Keep", topic("keep"))
    report = run(tmp_path / "docs", relaxed, minilm, prune=True)
    assert report.documents.deleted == 5


def test_prune_never_touches_documents_of_another_source(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings(prune_max_fraction=1.0)
    corpus(tmp_path / "a", 2)
    b_files = corpus(tmp_path / "b", 2)
    run(tmp_path / "a", settings, minilm)
    run(tmp_path / "b", settings, minilm)
    b_files[0].unlink()
    report = run(tmp_path / "b", settings, minilm, prune=True)
    assert report.documents.deleted == 1
    assert len(read_manifest(settings.milvus_uri)) == 3


def test_a_collection_with_another_dimension_is_refused(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    from components.storage.milvus import ChunkStore

    settings = make_settings()
    store = ChunkStore(settings.milvus_uri, "documents")
    store.ensure(768)
    store.close()
    corpus(tmp_path / "docs", 1)
    with pytest.raises(SchemaMismatchError, match=r"768-dimensional.*384-dimensional"):
        run(tmp_path / "docs", settings, minilm)


def test_partition_in_worker_processes_with_a_timeout(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    corpus(tmp_path / "docs", 3)
    settings = make_settings(partition_workers=1)
    report = run(tmp_path / "docs", settings, minilm)
    assert report.documents.new == 3 and report.chunks > 3

    tight = make_settings(
        partition_workers=1, partition_timeout_s=0.001, milvus_uri=str(tmp_path / "timeout.db")
    )
    report = run(tmp_path / "docs", tight, minilm)
    assert report.documents.failed == 3
    assert all("timed out" in f.error for f in report.failures)


@pytest.mark.parametrize("suffix", TYPES)
def test_single_file_source(suffix: str, tmp_path: Path, make_settings: Any, minilm: Any) -> None:
    path = write_document(tmp_path / f"one{suffix}", "One", topic("one"))
    report = run(path, make_settings(), minilm)
    assert report.documents.new == 1
    assert {r["metadata"]["file_type"] for r in read_rows(make_settings().milvus_uri)} == {
        SUPPORTED_TYPES[suffix]
    }
