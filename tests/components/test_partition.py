"""Partitioning and chunking of every supported type, offline, and of broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.partition import ChunkingConfig, DocumentError, decode_text, partition_document
from components.sources import SUPPORTED_TYPES
from tests.documents import topic, write_broken, write_document

CONFIG = ChunkingConfig(max_characters=400, overlap=40)


@pytest.mark.parametrize("suffix", [".md", ".html", ".txt", ".pdf", ".docx"])
def test_each_type_partitions_offline_with_metadata(
    suffix: str, tmp_path: Path, no_network: None
) -> None:
    path = write_document(tmp_path / f"khelben{suffix}", "Khelben", topic("vLLM", words=150))
    chunks = partition_document(path.read_bytes(), path.name, SUPPORTED_TYPES[suffix], CONFIG)

    assert len(chunks) >= 2, "400-character chunks of ~2000 characters make several"
    assert all(len(c.text) <= CONFIG.max_characters for c in chunks)
    joined = " ".join(c.text for c in chunks)
    assert "vLLM service runs on the homelab cluster" in joined
    for chunk in chunks:
        assert chunk.metadata["file_type"] == SUPPORTED_TYPES[suffix]
        assert chunk.metadata["filename"] == path.name
        assert "orig_elements" not in chunk.metadata
    if suffix == ".pdf":
        assert all(isinstance(c.metadata.get("page_number"), int) for c in chunks)
    if suffix != ".txt":  # plain text has no headings to keep
        sections = {c.metadata.get("section") for c in chunks}
        assert {"About vLLM", "Operating vLLM"} & sections


def test_basic_strategy_and_overlap(tmp_path: Path) -> None:
    path = write_document(tmp_path / "a.md", "A", topic("NATS", words=200))
    config = ChunkingConfig(strategy="basic", max_characters=300, overlap=60)
    chunks = partition_document(path.read_bytes(), path.name, "md", config)
    assert len(chunks) >= 3
    assert all(len(c.text) <= 300 for c in chunks)


def test_broken_files_fail_with_a_reason(tmp_path: Path) -> None:
    files = write_broken(tmp_path)
    cases = {
        "corrupt_pdf": ("pdf", "corrupt PDF"),
        "truncated_docx": ("docx", "corrupt DOCX"),
        "binary_txt": ("txt", "binary content"),
    }
    for key, (file_type, reason) in cases.items():
        with pytest.raises(DocumentError, match=reason):
            partition_document(files[key].read_bytes(), files[key].name, file_type, CONFIG)


def test_empty_document_has_no_chunks(tmp_path: Path) -> None:
    files = write_broken(tmp_path)
    assert partition_document(b"", "empty.md", "md", CONFIG) == []
    assert partition_document(files["empty_md"].read_bytes(), "empty.md", "md", CONFIG) == []


def test_non_utf8_text_is_decoded_not_lost(tmp_path: Path) -> None:
    files = write_broken(tmp_path)
    data = files["latin1_txt"].read_bytes()
    assert "Café crème" in decode_text(data)
    chunks = partition_document(data, "latin1.txt", "txt", CONFIG)
    assert "Zürich" in " ".join(c.text for c in chunks)


def test_utf8_bom_is_stripped() -> None:
    assert decode_text("\ufeffhello".encode()) == "hello"
