"""Partitioning and chunking of every supported type, offline, and of broken files."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.ingest.partition import (
    ChunkingConfig,
    DocumentError,
    decode_text,
    partition_document,
)
from components.ingest.sources import SUPPORTED_TYPES
from testing.documents import topic, write_broken, write_document

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


def test_repeated_chunk_texts_are_kept_once_in_first_occurrence_order() -> None:
    paragraphs = [
        f"Paragraph {k}." + f" The {k} node runs a service for the cluster." * 12 for k in "ABC"
    ]
    text = "\n\n".join([paragraphs[0], paragraphs[1]] * 20 + [paragraphs[2], paragraphs[0]])
    for file_type in ("txt", "md"):
        chunks = partition_document(text.encode(), f"r.{file_type}", file_type, ChunkingConfig())
        assert [c.text for c in chunks] == paragraphs


def test_one_word_repeated_makes_a_few_chunks_not_thousands() -> None:
    chunks = partition_document(b"word " * 40_000, "w.txt", "txt", ChunkingConfig())
    texts = [c.text for c in chunks]
    assert len(texts) == len(set(texts)) <= 2, "200 KB of one word: one full chunk and the tail"


def test_non_utf8_text_is_decoded_not_lost(tmp_path: Path) -> None:
    files = write_broken(tmp_path)
    data = files["latin1_txt"].read_bytes()
    assert "Café crème" in decode_text(data)
    chunks = partition_document(data, "latin1.txt", "txt", CONFIG)
    assert "Zürich" in " ".join(c.text for c in chunks)


def test_utf8_bom_is_stripped() -> None:
    assert decode_text("\ufeffhello".encode()) == "hello"


# -- classification without spaCy where it cannot change a chunk (components/ingest/partition.py) --

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "docs"


def _all_chunks(paths: list[Path], config: ChunkingConfig) -> list[list[tuple[str, dict]]]:
    return [
        [
            (c.text, c.metadata)
            for c in partition_document(p.read_bytes(), p.name, SUPPORTED_TYPES[p.suffix], config)
        ]
        for p in paths
    ]


def _mixed_documents(folder: Path) -> list[Path]:
    """Every type, with short lines that only the text heuristics make titles (txt, pdf)."""
    sections = [
        ("Install", "Quick start\n\n" + "The NATS bridge is installed with pip and a config. " * 9),
        ("USAGE NOTES", "Run it. Stop it.\n\nSee the manual\n\n" + "Jobs run nightly. " * 30),
        ("A heading of exactly twelve words that is still short enough now", "Ok " * 90),
    ]
    return [
        write_document(folder / f"mixed{suffix}", "Mixed", sections)
        for suffix in (".md", ".html", ".txt", ".pdf", ".docx")
    ]


def test_fast_classification_keeps_every_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from components.ingest import partition

    paths = sorted(EXAMPLES.iterdir()) + _mixed_documents(tmp_path)
    assert {p.suffix for p in paths} >= {".md", ".html", ".txt", ".pdf", ".docx"}
    for config in (CONFIG, ChunkingConfig()):
        monkeypatch.setattr(partition, "FAST_CLASSIFICATION", False)
        slow = _all_chunks(paths, config)
        monkeypatch.setattr(partition, "FAST_CLASSIFICATION", True)
        fast = _all_chunks(paths, config)
        assert fast == slow
    assert any(c[1].get("section") for doc in fast for c in doc)


@pytest.mark.parametrize("max_words", [None, "20"])
def test_fast_classification_makes_the_same_titles(
    max_words: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """element_from_text (txt and pdf) gives a Title exactly when unstructured alone does."""
    from unstructured.documents.elements import Title
    from unstructured.partition.text import element_from_text

    from components.ingest.partition import use_fast_classification

    if max_words:
        monkeypatch.setenv("UNSTRUCTURED_TITLE_MAX_WORD_LENGTH", max_words)
    texts = [
        "Installation",
        "ITEM 1A. RISK FACTORS",
        "employer to this list!",
        "Document 3 of the benchmark corpus.",
        "Operating the vLLM service on the homelab cluster",
        "One two three four five six seven eight nine ten eleven twelve",
        "One Two Three Four Five Six Seven Eight Nine Ten Eleven Twelve Thirteen",
        "Why The Homelab Cluster Runs Every Model Behind One Gateway And Not Many Others",
        "THE CLUSTER RUNS EVERY MODEL BEHIND ONE GATEWAY AND NOT MANY OTHERS AT ALL",
        "The reranker scores each candidate against the question and reorders them all.",
        "Danilo serves the BGE reranker, at 0.8 of the GPU, behind the /reranker route.",
    ]
    try:
        use_fast_classification(False)
        slow = [isinstance(element_from_text(t), Title) for t in texts]
        use_fast_classification(True)
        fast = [isinstance(element_from_text(t), Title) for t in texts]
    finally:
        use_fast_classification(True)
    assert fast == slow
    assert any(slow) and not all(slow)


def test_fast_classification_is_installed_by_partitioning(tmp_path: Path) -> None:
    from unstructured.partition import docx, text, text_type
    from unstructured.partition.html import parser

    path = write_document(tmp_path / "a.txt", "A", topic("NATS"))
    partition_document(path.read_bytes(), path.name, "txt", CONFIG)
    for module in (text, parser, docx):
        assert module.is_possible_narrative_text is not text_type.is_possible_narrative_text
