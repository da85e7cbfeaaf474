"""Small test documents of every supported type, plus broken ones."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

Sections = list[tuple[str, str]]  # (heading, paragraph)


def write_document(path: Path, title: str, sections: Sections) -> Path:
    """Write a document whose type follows ``path``'s suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix
    if suffix == ".md":
        body = "\n\n".join(f"## {h}\n\n{p}" for h, p in sections)
        path.write_text(f"# {title}\n\n{body}\n")
    elif suffix == ".html":
        body = "".join(f"<h2>{html.escape(h)}</h2><p>{html.escape(p)}</p>" for h, p in sections)
        path.write_text(f"<html><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    elif suffix == ".txt":
        body = "\n\n".join(p for _, p in sections)
        path.write_text(f"{title}\n\n{body}\n")
    elif suffix == ".pdf":
        _write_pdf(path, title, sections)
    elif suffix == ".docx":
        import docx

        document = docx.Document()
        document.add_heading(title, 1)
        for heading, paragraph in sections:
            document.add_heading(heading, 2)
            document.add_paragraph(paragraph)
        document.save(str(path))
    else:
        raise ValueError(f"no writer for {suffix}")
    return path


def _write_pdf(path: Path, title: str, sections: Sections) -> None:
    """One page per section, so page numbers are exercised."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    for index, (heading, paragraph) in enumerate(sections):
        pdf.add_page()
        if index == 0:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 10, text=title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, text=heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text=paragraph, new_x="LMARGIN", new_y="NEXT")
    pdf.output(str(path))


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
