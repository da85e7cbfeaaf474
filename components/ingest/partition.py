"""Partition one document with unstructured (``strategy="fast"``) and chunk it.

Runs inside partition worker processes, so everything here is picklable and top-level.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from components.offline import configure_offline

if TYPE_CHECKING:
    from unstructured.documents.elements import Element


class DocumentError(Exception):
    """A document that cannot be ingested; the message says why, in words a user can act on."""


@dataclass(frozen=True)
class ChunkingConfig:
    """How documents are cut into chunks; part of the pipeline fingerprint."""

    strategy: Literal["by_title", "basic"] = "by_title"
    max_characters: int = 1000
    overlap: int = 100
    languages: tuple[str, ...] = ("eng",)

    def fingerprint_fields(self) -> dict[str, Any]:
        return {
            "partition": "unstructured-fast",
            "chunking": self.strategy,
            "max_characters": self.max_characters,
            "overlap": self.overlap,
            "languages": list(self.languages),
        }


@dataclass
class Chunk:
    """A chunk's text and the metadata kept for it."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def partition_document(
    data: bytes, name: str, file_type: str, config: ChunkingConfig
) -> list[Chunk]:
    """The chunks of one document; raises DocumentError when it can't be read."""
    configure_offline()
    use_fast_classification(FAST_CLASSIFICATION)
    elements = _partition(data, name, file_type, config)
    return distinct_chunks(_chunk(elements, name, file_type, config))


def distinct_chunks(chunks: list[Chunk]) -> list[Chunk]:
    """Each chunk text once, where it first occurs (with that occurrence's metadata).

    A document that repeats itself (boilerplate on every page, one word over and over) would
    otherwise store and embed the same text again and again: 5 MB of one word made 5,826
    identical chunks. Chunk indexes, and so chunk keys, count the chunks kept."""
    seen: set[str] = set()
    kept: list[Chunk] = []
    for chunk in chunks:
        if chunk.text not in seen:
            seen.add(chunk.text)
            kept.append(chunk)
    return kept


# Element classification without spaCy where its answer cannot change a chunk.
#
# unstructured's partitioners classify each text block with is_possible_narrative_text(), whose
# sentence and verb checks run spaCy's en_core_web_sm (tagger and parser) on the block: about
# 85% of the CPU of partitioning md, html, txt and docx, and half of pdf's. Only one outcome of
# classification changes what is stored: whether a block is a Title (chunk_by_title starts a
# section at a Title, and a Title's text is the chunks' section metadata). NarrativeText, Text
# and UncategorizedText chunk alike and are not stored. So, in unstructured 0.27 (pinned <0.28):
# - html/parser.py (html and md) and docx.py use the check only to choose NarrativeText over
#   Text; a Title comes from markup there (<h1>-<h6>, heading styles). Answered True, no spaCy.
# - text.py's element_from_text (txt, and pdf's text boxes) makes a Title of a block that is not
#   narrative and passes is_possible_title(), which rejects any block of more than
#   UNSTRUCTURED_TITLE_MAX_WORD_LENGTH (default 12) space-separated words first thing. For such
#   a block the check is answered True without spaCy; shorter blocks get the real check, so
#   every Title is the one unstructured makes alone.
# unstructured has no parameter or setting that skips the check, hence this small patch of the
# name in the three modules that import it; text_type.py itself is left as it is.
# tests/components/test_partition.py checks chunks are identical with and without it.
FAST_CLASSIFICATION = True
_patched_classifiers = False


def _narrative_without_spacy(text: str, *args: Any, **kwargs: Any) -> bool:
    """For callers that only choose NarrativeText over Text: either chunks the same."""
    return True


def _narrative_unless_title_possible(text: str, *args: Any, **kwargs: Any) -> bool:
    from unstructured.partition.text_type import is_possible_narrative_text

    title_max_words = int(os.environ.get("UNSTRUCTURED_TITLE_MAX_WORD_LENGTH", 12))
    if len(text.split(" ")) > title_max_words:
        return True  # cannot be a Title: NarrativeText or Text, which chunk alike
    return is_possible_narrative_text(text, *args, **kwargs)


def use_fast_classification(enabled: bool = True) -> None:
    """Install (or, with ``enabled=False``, remove) the classification shortcuts above."""
    global _patched_classifiers
    if _patched_classifiers == enabled:
        return
    from unstructured.partition import docx, text, text_type
    from unstructured.partition.html import parser

    original = text_type.is_possible_narrative_text
    text.is_possible_narrative_text = _narrative_unless_title_possible if enabled else original
    parser.is_possible_narrative_text = _narrative_without_spacy if enabled else original
    docx.is_possible_narrative_text = _narrative_without_spacy if enabled else original
    _patched_classifiers = enabled


def _partition(data: bytes, name: str, file_type: str, config: ChunkingConfig) -> list[Element]:
    if not data.strip():
        return []
    languages = list(config.languages)
    try:
        if file_type in ("md", "html", "txt"):
            text = decode_text(data)
            if file_type == "md":
                from unstructured.partition.md import partition_md

                return partition_md(text=text, metadata_filename=name, languages=languages)
            if file_type == "html":
                from unstructured.partition.html import partition_html

                return partition_html(text=text, metadata_filename=name, languages=languages)
            from unstructured.partition.text import partition_text

            return partition_text(text=text, metadata_filename=name, languages=languages)
        if file_type == "pdf":
            _check_pdf(data)
            from unstructured.partition.pdf import partition_pdf

            elements = partition_pdf(
                file=io.BytesIO(data), metadata_filename=name, strategy="fast", languages=languages
            )
            if not any(e.text.strip() for e in elements):
                raise DocumentError(
                    "PDF has no text layer (scanned?); the fast strategy found no text"
                )
            return elements
        if file_type == "docx":
            _check_zip(data, "DOCX")
            from unstructured.partition.docx import partition_docx

            return partition_docx(
                file=io.BytesIO(data), metadata_filename=name, languages=languages
            )
    except DocumentError:
        raise
    except Exception as exc:  # unstructured and its parsers raise anything; keep the reason
        raise DocumentError(
            f"{file_type} partitioning failed: {type(exc).__name__}: {exc}"
        ) from exc
    raise DocumentError(f"unsupported file type {file_type!r}")


def decode_text(data: bytes) -> str:
    """Text from bytes: UTF-8 (with or without BOM), else the detected encoding; binary refused."""
    if b"\x00" in data[:8192]:
        raise DocumentError("binary content (NUL bytes) in a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise DocumentError("undecodable bytes: not UTF-8 and no other text encoding fits")
    text = str(best)
    if _is_single_byte(best.encoding):
        # Short single-byte text is ambiguous between code pages; detectors often pick a
        # Central European one for French or German. Windows-1252 is the likelier author.
        with contextlib.suppress(UnicodeDecodeError):
            text = data.decode("cp1252")
    if sum(not (c.isprintable() or c.isspace()) for c in text) > len(text) * 0.05:
        raise DocumentError(f"binary content: bytes decode as {best.encoding} but not to text")
    return text


def _is_single_byte(encoding: str) -> bool:
    name = encoding.lower().replace("-", "_")
    return name.startswith(("cp125", "windows_125", "iso8859", "latin", "mac_")) or name in (
        "cp437",
        "cp850",
    )


def _check_pdf(data: bytes) -> None:
    if not data.lstrip()[:5] == b"%PDF-":
        raise DocumentError("corrupt PDF: no %PDF- header")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        pages = len(PdfReader(io.BytesIO(data)).pages)
    except (PyPdfError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(f"corrupt PDF: {exc}") from exc
    if pages == 0:
        raise DocumentError("corrupt PDF: no pages")


def _check_zip(data: bytes, kind: str) -> None:
    import zipfile

    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise DocumentError(f"corrupt {kind}: not a zip container")


def _chunk(
    elements: list[Element], name: str, file_type: str, config: ChunkingConfig
) -> list[Chunk]:
    if not elements:
        return []
    from unstructured.documents.elements import Title

    kwargs: dict[str, Any] = {"max_characters": config.max_characters, "overlap": config.overlap}
    if config.strategy == "by_title":
        from unstructured.chunking.title import chunk_by_title

        chunked = chunk_by_title(elements, **kwargs)
    else:
        from unstructured.chunking.basic import chunk_elements

        chunked = chunk_elements(elements, **kwargs)

    chunks: list[Chunk] = []
    section: str | None = None
    for element in chunked:
        # orig_elements is a large serialized blob; read what we keep, then drop it.
        originals = getattr(element.metadata, "orig_elements", None) or []
        titles = [o.text.strip() for o in originals if isinstance(o, Title) and o.text.strip()]
        starts_with_title = bool(originals) and isinstance(originals[0], Title)
        chunk_section = titles[0] if starts_with_title else section
        if titles:
            section = titles[-1]
        page = next((o.metadata.page_number for o in originals if o.metadata.page_number), None)
        text = element.text.strip()
        if not text:
            continue
        metadata: dict[str, Any] = {"file_type": file_type, "filename": name}
        if chunk_section:
            metadata["section"] = chunk_section
        if page is not None:
            metadata["page_number"] = page
        chunks.append(Chunk(text=text, metadata=metadata))
    return chunks
