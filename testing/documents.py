"""Writers for test, sample and benchmark documents of each supported type.

Deterministic: the same title and sections give the same bytes (fixed PDF/DOCX dates).
"""

from __future__ import annotations

import html
import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

Sections = list[tuple[str, str]]  # (heading, text; paragraphs separated by blank lines)
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def write_md(path: Path, title: str, sections: Sections) -> None:
    body = "\n\n".join(f"## {h}\n\n" + "\n\n".join(_paragraphs(t)) for h, t in sections)
    path.write_text(f"# {title}\n\n{body}\n", encoding="utf-8")


def write_html(path: Path, title: str, sections: Sections) -> None:
    body = "".join(
        f"<h2>{html.escape(h)}</h2>" + "".join(f"<p>{html.escape(p)}</p>" for p in _paragraphs(t))
        for h, t in sections
    )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")


def write_txt(path: Path, title: str, sections: Sections) -> None:
    body = "\n\n".join("\n\n".join(_paragraphs(t)) for _, t in sections)
    path.write_text(f"{title}\n\n{body}\n", encoding="utf-8")


def write_pdf(path: Path, title: str, sections: Sections) -> None:
    """A text PDF with one page per section (core fonts: text is reduced to Latin-1)."""
    from fpdf import FPDF

    def latin1(text: str) -> str:
        return text.encode("latin-1", "replace").decode("latin-1")

    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    for index, (heading, text) in enumerate(sections):
        pdf.add_page()
        if index == 0:
            pdf.set_font("Helvetica", "B", 18)
            pdf.multi_cell(0, 10, text=latin1(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, text=latin1(heading), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for paragraph in _paragraphs(text):
            pdf.multi_cell(0, 6, text=latin1(paragraph), new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    pdf.output(str(path))


def write_docx(path: Path, title: str, sections: Sections) -> None:
    import docx

    document = docx.Document()
    document.core_properties.created = FIXED_DATE
    document.core_properties.modified = FIXED_DATE
    document.add_heading(title, 1)
    for heading, text in sections:
        document.add_heading(heading, 2)
        for paragraph in _paragraphs(text):
            document.add_paragraph(paragraph)
    buffer = io.BytesIO()
    document.save(buffer)
    path.write_bytes(_fixed_zip_dates(buffer.getvalue()))


def _fixed_zip_dates(data: bytes) -> bytes:
    """python-docx stamps every archive entry with the current time; fix them for stable bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


WRITERS = {
    ".md": write_md,
    ".html": write_html,
    ".txt": write_txt,
    ".pdf": write_pdf,
    ".docx": write_docx,
}


def write_document(path: Path, title: str, sections: Sections) -> Path:
    """Write a document whose type follows ``path``'s suffix."""
    try:
        writer = WRITERS[path.suffix]
    except KeyError:
        raise ValueError(f"no writer for {path.suffix}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    writer(path, title, sections)
    return path


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
