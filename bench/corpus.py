"""A benchmark corpus of real prose: the READMEs shipped in installed packages' metadata.

`python -m bench.corpus DEST N` writes N documents round-robin across .md, .html, .txt, .pdf and
.docx, each 150 to 1200 words with headings, deterministic for a seed.
"""

from __future__ import annotations

import random
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

from testing.documents import Sections, write_document

TYPES = (".md", ".html", ".txt", ".pdf", ".docx")
_HEADING = re.compile(r"^#{1,4}\s+(.+)$|^(.+)\n[=\-~^]{3,}\s*$", re.MULTILINE)
_CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)
_MARKUP = re.compile(r"<[^>]+>|!\[[^\]]*\]\([^)]*\)|\[([^\]]*)\]\([^)]*\)|[`*_|>]")


def _clean(text: str) -> str:
    text = _CODE_BLOCK.sub(" ", text)
    text = _MARKUP.sub(lambda m: m.group(1) or " ", text)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if _is_prose(p))


def _is_prose(paragraph: str) -> bool:
    words = paragraph.split()
    links = sum("://" in w or w.startswith(":") for w in words)
    return len(words) >= 8 and not paragraph.startswith("..") and links <= len(words) // 10


def _sections(description: str) -> Sections:
    """A README cut at its headings into (heading, prose) sections with enough prose."""
    marks = list(_HEADING.finditer(description))
    cuts = [(m.start(), m.end(), (m.group(1) or m.group(2) or "").strip()) for m in marks]
    sections: Sections = []
    starts = [*cuts, (len(description), len(description), "")]
    heading = "Overview"
    position = 0
    for start, end, next_heading in starts:
        prose = _clean(description[position:start])
        if len(prose.split()) >= 30:
            sections.append((heading[:80] or "Section", prose))
        heading, position = next_heading, end
    return sections


def source_sections() -> list[Sections]:
    """Every installed distribution's README with usable prose, in a stable order."""
    found: dict[str, Sections] = {}
    for dist in distributions():
        name = (dist.metadata.get("Name") or "").lower()
        description = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if not name or name in found or not isinstance(description, str):
            continue
        sections = _sections(description)
        if sum(len(t.split()) for _, t in sections) >= 150:
            found[name] = sections
    return [found[name] for name in sorted(found)]


def _document(pool: list[Sections], rng: random.Random, index: int) -> tuple[str, Sections]:
    target = rng.randint(150, 1200)
    sections: Sections = []
    words = 0
    while words < target:
        source = pool[rng.randrange(len(pool))]
        for heading, text in rng.sample(source, k=len(source)):
            sections.append((heading, text))
            words += len(text.split())
            if words >= target:
                break
    # The unique first line keeps every document's bytes (and so its content hash) distinct.
    title = f"Benchmark document {index}"
    sections[0] = (sections[0][0], f"Document {index} of the benchmark corpus.\n\n{sections[0][1]}")
    return title, sections


def build_corpus(dest: Path, n_docs: int, seed: int = 0) -> list[Path]:
    """Write ``n_docs`` documents into ``dest``, round-robin over the five types."""
    pool = source_sections()
    if not pool:
        raise RuntimeError("no installed package ships a README with enough prose")
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(n_docs):
        title, sections = _document(pool, rng, index)
        path = dest / f"doc-{index:05d}{TYPES[index % len(TYPES)]}"
        paths.append(write_document(path, title, sections))
    return paths


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.corpus DEST N")
    written = build_corpus(Path(sys.argv[1]), int(sys.argv[2]))
    print(f"wrote {len(written)} documents to {sys.argv[1]}")
