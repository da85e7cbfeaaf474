"""Boilerplate shared by many documents must not hide the others from dense search.

On Milvus Lite, approximate indexes (AUTOINDEX, HNSW) stop returning a distinct vector once
many identical ones surround it (reproduced with plain pymilvus: 50 identical vectors and one
distinct one, database reopened). FLAT is exact, and the default on Lite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llmw.test_ingest_cli import llmw

BOILERPLATE = (
    "This page is part of the homelab handbook. Questions go to the platform channel; "
    "changes go through a pull request against the GitOps repository."
)
DISTINCT = (
    "Volcano gang-schedules the distributed training jobs, so that every worker of a job starts "
    "together or none of them does."
)


def corpus(folder: Path, copies: int) -> None:
    folder.mkdir(parents=True)
    for i in range(copies):
        (folder / f"page-{i:03d}.txt").write_text(BOILERPLATE + "\n")
    (folder / "scheduling.txt").write_text(DISTINCT + "\n")


@pytest.mark.parametrize("index_type", ["auto", "FLAT"])
def test_a_distinct_document_is_found_among_a_hundred_copies_of_boilerplate(
    tmp_path: Path, index_type: str
) -> None:
    corpus(tmp_path / "docs", copies=100)
    # Each side in its own process, as a user's `llmw ingest` then `llmw search` are: the
    # database reopened is where approximate indexes lose the distinct vector.
    env = {"LLMW_MILVUS_URI": str(tmp_path / "m.db"), "LLMW_MILVUS_INDEX_TYPE": index_type}
    ingested = llmw("ingest", str(tmp_path / "docs"), "--json", env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["documents"]["new"] == 101
    found = llmw("search", DISTINCT, "--json", "--top-k", "3", env=env)
    assert found.returncode == 0, found.stderr
    sources = [hit["source_uri"] for hit in json.loads(found.stdout)]
    assert sources and sources[0].endswith("/scheduling.txt"), sources
