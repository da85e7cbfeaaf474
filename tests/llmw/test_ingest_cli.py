"""The `llmw ingest` / `llmw search` contract: options, JSON keys, exit codes, light imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testing.documents import topic, write_broken, write_document
from tests.conftest import EXAMPLE_DOCS, REPO

HEAVY = ("torch", "unstructured", "pymilvus", "sentence_transformers")


def llmw(
    *args: str, env: dict[str, str] | None = None, cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmw.cli", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize(
    "args", [["--help"], ["ingest", "--help"], ["search", "--help"], ["infer", "--help"]]
)
def test_help_does_not_import_heavy_libraries(args: list[str]) -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from llmw.cli import app; "
        f"r = CliRunner().invoke(app, {args!r}); assert r.exit_code == 0, r.output; "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The sample corpus ingested once through the CLI, as `make demo` does."""
    uri = str(tmp_path_factory.mktemp("sample") / "milvus.db")
    result = llmw("ingest", str(EXAMPLE_DOCS), "--milvus-uri", uri, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"documents", "chunks", "seconds", "failures"}
    assert set(report["documents"]) == {
        "seen",
        "new",
        "changed",
        "unchanged",
        "deleted",
        "failed",
        "skipped",
    }
    assert report["documents"]["new"] == report["documents"]["seen"] >= 12
    assert report["failures"] == []
    return uri


@pytest.mark.parametrize(
    ("query", "expected_source", "hybrid"),
    [
        ("Which GPU runs vLLM?", "khelben", False),
        ("How are workflow triggers delivered over NATS?", "nats", True),
        ("HSA_OVERRIDE_GFX_VERSION for the Radeon 680M embeddings node", "drizzt", True),
        ("Which node transcribes speech with Whisper?", "elminster", False),
    ],
)
def test_search_finds_the_expected_sample_document(
    sample_db: str, query: str, expected_source: str, hybrid: bool
) -> None:
    args = ["search", query, "--milvus-uri", sample_db, "--top-k", "3", "--json"]
    result = llmw(*args, *(["--hybrid"] if hybrid else []))
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert set(hits[0]) == {"score", "text", "source_uri", "doc_id", "chunk_index"}
    assert expected_source in hits[0]["source_uri"].lower(), hits[0]


def test_search_of_a_missing_collection_is_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    made = subprocess.run(  # a database without the collection, in a process of its own
        [
            sys.executable,
            "-c",
            "import sys, pymilvus; pymilvus.MilvusClient(sys.argv[1])",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    result = llmw("search", "x", "--milvus-uri", str(database))
    assert result.returncode == 2
    assert "collection 'documents' does not exist" in result.stderr


def test_exit_code_3_when_a_document_fails(tmp_path: Path) -> None:
    write_document(tmp_path / "docs" / "ok.md", "Ok", topic("ok"))
    write_broken(tmp_path / "docs")
    result = llmw(
        "ingest", str(tmp_path / "docs"), "--milvus-uri", str(tmp_path / "m.db"), "--json"
    )
    assert result.returncode == 3, result.stderr
    report = json.loads(result.stdout)
    assert {f["source_uri"].rsplit("/", 1)[-1] for f in report["failures"]} == {
        "corrupt.pdf",
        "truncated.docx",
        "binary.txt",
    }
    assert report["documents"]["skipped"] == 1


def test_table_output_and_prune_refusal(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    files = [write_document(docs / f"d{i}.md", "D", topic(f"d{i}")) for i in range(3)]
    uri = str(tmp_path / "m.db")
    first = llmw("ingest", str(docs), "--milvus-uri", uri)
    assert first.returncode == 0, first.stderr
    assert "documents new" in first.stdout and "chunks/s" in first.stdout
    for path in files[:2]:
        path.unlink()
    refused = llmw("ingest", str(docs), "--milvus-uri", uri, "--prune")
    assert refused.returncode == 4
    assert "refusing to prune 2 of 3" in refused.stderr


def test_bad_input_names_the_problem(tmp_path: Path) -> None:
    missing = llmw("ingest", str(tmp_path / "nowhere"), "--milvus-uri", str(tmp_path / "m.db"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr
    bad_name = llmw("ingest", str(tmp_path), "--collection", "bad-name!")
    assert bad_name.returncode == 2
    assert "collection" in bad_name.stderr
