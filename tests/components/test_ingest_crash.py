"""A run killed mid-way, then rerun, leaves exactly the rows of a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.ingest.models import IngestParams
from components.ingest.run import ingest
from testing.documents import topic, write_document
from tests.conftest import REPO
from tests.milvus_rows import read_manifest, read_rows

# Flushes after every row (tiny write batches), printing each row written and each finished
# document, so the test can kill it in the middle of a document.
RUNNER = """
import sys
from components.ingest.run import ingest
from components.ingest.models import IngestParams
from components.storage.milvus import ChunkStore
from components.settings import Settings

upsert = ChunkStore.upsert_chunks

def upsert_and_tell(self, rows):
    upsert(self, rows)
    print("row", flush=True)

ChunkStore.upsert_chunks = upsert_and_tell

if __name__ == "__main__":
    settings = Settings(milvus_uri=sys.argv[2], partition_workers=0, milvus_write_batch_bytes=1,
                        chunk_max_characters=200, chunk_overlap=0)
    ingest(IngestParams(source=sys.argv[1]), settings,
           progress=lambda outcome, ref: print(outcome, ref.name, flush=True))
"""


def kill_after(source: Path, milvus_uri: str, finished_documents: int, rows: int) -> None:
    """Run ingestion in its own process group; SIGKILL all of it once ``finished_documents``
    are done and ``rows`` more rows are written."""
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(source), milvus_uri],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so the kill takes Milvus Lite's server process too
    )
    assert process.stdout is not None
    done = written = 0
    for line in process.stdout:
        done += line.startswith("new ")
        written += done >= finished_documents and line.startswith("row")
        if written == rows:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"


def test_killed_then_rerun_equals_a_clean_run(
    tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    docs = tmp_path / "docs"
    for i, suffix in enumerate([".md", ".txt", ".html", ".md", ".txt", ".html", ".md", ".txt"]):
        write_document(docs / f"doc{i}{suffix}", f"Doc {i}", topic(f"service{i}", words=200))
    settings = make_settings(chunk_max_characters=200, chunk_overlap=0)

    kill_after(docs, settings.milvus_uri, finished_documents=3, rows=2)
    partial = read_manifest(settings.milvus_uri)
    assert any(m["pending_keys"] for m in partial), "the kill should land inside a document"

    # Between the crash and the rerun one half-written document changes: its partial rows
    # from the lost version must not survive.
    pending_uri = next(m["source_uri"] for m in partial if m["pending_keys"])
    changed = Path(pending_uri.removeprefix("file://"))
    write_document(changed, "Changed", topic("rewritten", words=80))

    rerun = ingest(IngestParams(source=str(docs)), settings, embedder=minilm)
    assert rerun.documents.failed == 0
    assert rerun.documents.unchanged + rerun.documents.new + rerun.documents.changed == 8

    clean = make_settings(
        milvus_uri=str(tmp_path / "clean.db"), chunk_max_characters=200, chunk_overlap=0
    )
    ingest(IngestParams(source=str(docs)), clean, embedder=minilm)
    assert read_rows(settings.milvus_uri) == read_rows(clean.milvus_uri)
    manifest = read_manifest(settings.milvus_uri)
    assert manifest == read_manifest(clean.milvus_uri)
    assert all(m["pending_keys"] == "" for m in manifest)
