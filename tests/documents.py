"""Small test documents of every supported type, plus broken ones."""

from __future__ import annotations

from pathlib import Path

from bench.writers import Sections, write_document

__all__ = ["Sections", "topic", "write_broken", "write_document"]


def topic(name: str, words: int = 60) -> Sections:
    """Two sections of plain prose about ``name``, long enough to chunk."""
    sentence = f"The {name} service runs on the homelab cluster and is managed with GitOps. "
    body = sentence * max(1, words // 14)
    return [(f"About {name}", body), (f"Operating {name}", body.replace("runs", "is watched"))]


def write_broken(folder: Path) -> dict[str, Path]:
    """Files that must fail or be skipped, each for a reason the report must name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "corrupt_pdf": folder / "corrupt.pdf",
        "truncated_docx": folder / "truncated.docx",
        "binary_txt": folder / "binary.txt",
        "empty_md": folder / "empty.md",
        "latin1_txt": folder / "latin1.txt",
        "unsupported": folder / "image.png",
    }
    files["corrupt_pdf"].write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage")
    files["truncated_docx"].write_bytes(b"PK\x03\x04 not really a zip")
    files["binary_txt"].write_bytes(bytes(range(256)) * 4)
    files["empty_md"].write_bytes(b"")
    files["latin1_txt"].write_bytes(
        "Café crème at the résumé desk: the naïve façade of Zürich's GPU room.\n".encode("latin-1")
        * 5
    )
    files["unsupported"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    return files
