"""A document that repeats itself stores each distinct chunk text once, and reruns converge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from components.ids import chunk_key, doc_id_for
from components.ingest.models import IngestParams, IngestReport
from components.ingest.run import ingest
from tests.milvus_rows import read_manifest, read_rows


def paragraph(name: str) -> str:
    return f"Paragraph {name}." + f" The {name} node runs a service for the cluster." * 12


def write(path: Path, names: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(paragraph(n) for n in names) + "\n", encoding="utf-8")


def run(source: Path, settings: Any, embedder: Any) -> IngestReport:
    return ingest(IngestParams(source=str(source)), settings, embedder=embedder)


def rows_of(settings: Any, doc_id: str) -> list[dict[str, Any]]:
    rows = [r for r in read_rows(settings.milvus_uri) if r["doc_id"] == doc_id]
    return sorted(rows, key=lambda r: r["chunk_index"])


def test_repeated_paragraphs_are_stored_once_and_a_rerun_writes_nothing(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    settings = make_settings()
    path = tmp_path / "docs" / "repeated.txt"
    write(path, ["A", "B"] * 40 + ["C", "A", "B"])
    write(tmp_path / "docs" / "other.txt", ["D"])
    doc_id = doc_id_for(path.resolve().as_uri())

    first = run(tmp_path / "docs", settings, minilm)
    assert first.documents.new == 2
    assert first.chunks == 4
    rows = rows_of(settings, doc_id)
    assert [r["text"] for r in rows] == [paragraph(n) for n in "ABC"]
    assert [r["chunk_index"] for r in rows] == [0, 1, 2]
    assert [r["pk"] for r in rows] == [chunk_key(doc_id, i, r["text"]) for i, r in enumerate(rows)]
    manifest = {m["doc_id"]: m for m in read_manifest(settings.milvus_uri)}
    assert manifest[doc_id]["chunk_count"] == 3

    everything = read_rows(settings.milvus_uri)
    again = run(tmp_path / "docs", settings, minilm)
    assert (again.documents.unchanged, again.chunks) == (2, 0)
    assert read_rows(settings.milvus_uri) == everything

    write(path, ["C"] * 30 + ["E", "C", "A"])  # changed: its rows are replaced, nothing stale
    changed = run(tmp_path / "docs", settings, minilm)
    assert (changed.documents.changed, changed.documents.unchanged) == (1, 1)
    assert changed.chunks == 3
    rows = rows_of(settings, doc_id)
    assert [r["text"] for r in rows] == [paragraph(n) for n in "CEA"]
    assert [r["pk"] for r in rows] == [chunk_key(doc_id, i, r["text"]) for i, r in enumerate(rows)]
    manifest = {m["doc_id"]: m for m in read_manifest(settings.milvus_uri)}
    assert (manifest[doc_id]["chunk_count"], manifest[doc_id]["pending_keys"]) == (3, "")
