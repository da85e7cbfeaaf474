"""Build the shipped gate set: ``python -m components.embedding_export.gate_set [REPO]``.

Chunks: the sample corpus (examples/docs), the README and the longer module docstrings of
``components/``, cut by the project's own partitioner and chunker (ingestion's defaults).
Queries: one per chunk of at least 30 words, eight consecutive words from its second half,
lower-cased and without punctuation; relevant: every chunk holding those words (chunks
overlap). Deterministic; the files it writes ship in components/embedding_export/data/.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
from pathlib import Path

from components.ingest.partition import ChunkingConfig, partition_document

DATA = Path(__file__).resolve().parent / "data"
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")


def documents(repo: Path) -> list[tuple[str, bytes, str]]:
    """(id, bytes, file type) of every document the set is cut from, in a stable order."""
    docs = [
        (f"examples/docs/{p.name}", p.read_bytes(), p.suffix.lstrip("."))
        for p in sorted((repo / "examples" / "docs").iterdir())
        if p.is_file()
    ]
    docs.append(("README.md", (repo / "README.md").read_bytes(), "md"))
    for path in sorted((repo / "components").rglob("*.py")):
        docstring = ast.get_docstring(ast.parse(path.read_text("utf-8")))
        if docstring and len(docstring) > 300:
            docs.append((str(path.relative_to(repo)), docstring.encode(), "txt"))
    return docs


def chunks(repo: Path) -> list[tuple[str, str]]:
    """(chunk id ``<document>#<index>``, text) for every chunk of every document."""
    config = ChunkingConfig()
    out: list[tuple[str, str]] = []
    for doc_id, data, file_type in documents(repo):
        for index, chunk in enumerate(partition_document(data, doc_id, file_type, config)):
            out.append((f"{doc_id}#{index}", chunk.text))
    return out


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def queries(chunked: list[tuple[str, str]], seed: int = 0) -> list[dict[str, object]]:
    """One query per chunk with enough words; relevant: the chunks that hold its words."""
    rng = random.Random(seed)
    joined = {cid: " ".join(_words(text)) for cid, text in chunked}
    out: list[dict[str, object]] = []
    for _, text in chunked:
        words = _words(text)
        if len(words) < 30:
            continue
        start = rng.randrange(len(words) // 2, len(words) - 8)
        query = " ".join(words[start : start + 8])
        relevant = [other for other, body in joined.items() if query in body]
        out.append({"query": query, "relevant": relevant})
    return out


def build(repo: Path, dest: Path = DATA) -> tuple[int, int]:
    """Write gate_chunks.jsonl and gate_queries.jsonl into ``dest``; (chunks, queries)."""
    chunked = chunks(repo)
    labelled = queries(chunked)
    dest.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"id": cid, "text": text}) for cid, text in chunked]
    (dest / "gate_chunks.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    lines = [json.dumps(q) for q in labelled]
    (dest / "gate_queries.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    return len(chunked), len(labelled)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
    made = build(root)
    print(f"wrote {made[0]} chunks and {made[1]} queries to {DATA}")
