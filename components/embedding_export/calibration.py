"""Calibration data for static int8: chunks of the user's own corpus, cut as ingestion cuts
them, tokenized as the exported model's runtime tokenizes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.embedding_export.onnx_export import TracedModel
    from components.settings import Settings

BATCH = 8  # texts per calibration batch: the calibrator keeps every batch's activations


def calibration_texts(source: str, settings: Settings, limit: int) -> list[str]:
    """Up to ``limit`` chunk texts of ``source`` (a folder, a file or ``s3://``), spread over
    its documents; a source with no readable text is refused, naming it."""
    from components.ingest.partition import DocumentError, partition_document
    from components.ingest.run import chunking_config
    from components.ingest.sources import open_source

    documents = open_source(source, settings)
    config = chunking_config(settings)
    texts: list[str] = []
    for ref in documents.list():
        try:
            chunks = partition_document(documents.read(ref), ref.name, ref.file_type or "", config)
        except DocumentError:
            continue
        texts += [chunk.text for chunk in chunks]
    if not texts:
        raise ValueError(f"calibration source {source}: no document with text to calibrate on")
    step = max(1, len(texts) // limit)
    return texts[::step][:limit]


def tokenized(folder: Path, traced: TracedModel, texts: list[str]) -> list[dict[str, Any]]:
    """The texts as the model's input batches (``folder`` holds the copied tokenizer)."""
    from components.embedding_export.runtime import TextEncoder

    encoder = TextEncoder(folder, traced.max_seq_length, traced.do_lower_case, traced.inputs)
    return [encoder.feeds(texts[i : i + BATCH]) for i in range(0, len(texts), BATCH)]
