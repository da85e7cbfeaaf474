"""Failures at the CLI's edge: one line and an exit code, never a traceback; nothing created."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmw.errors import describe
from testing.nats_server import free_port
from tests.conftest import EXAMPLE_DOCS
from tests.llmw.test_ingest_cli import llmw


def assert_one_line_error(result: object, code: int, *words: str) -> None:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == code, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, stderr
    assert "error: " in stderr, stderr
    for word in words:
        assert word in stderr, stderr


def test_an_unreachable_s3_endpoint_is_named_with_exit_1(tmp_path: Path) -> None:
    port = free_port()
    result = llmw(
        "ingest",
        "s3://bucket/docs",
        "--milvus-uri",
        str(tmp_path / "m.db"),
        env={"LLMW_S3_ENDPOINT": f"127.0.0.1:{port}"},
    )
    assert_one_line_error(result, 1, f"cannot reach 127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("/proc/llmw-test.db", ["can't write in /proc"]),
        ("notes.txt", ["ending in .db"]),
        ("a-file/x.db", ["is not a folder"]),
        ("ftp://host/x", ["scheme must be one of"]),
    ],
)
@pytest.mark.parametrize("command", ["ingest", "search"])
def test_a_milvus_uri_that_cannot_work_is_refused_with_exit_2(
    tmp_path: Path, uri: str, words: list[str], command: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    target = uri if uri.startswith(("/", "ftp:")) else str(tmp_path / uri)
    args = [str(EXAMPLE_DOCS)] if command == "ingest" else ["GPU"]
    result = llmw(command, *args, "--milvus-uri", target, cwd=tmp_path)
    assert_one_line_error(result, 2, *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_unreachable_milvus_server_exits_1() -> None:
    result = llmw("search", "GPU", "--milvus-uri", f"http://127.0.0.1:{free_port()}")
    assert_one_line_error(result, 1, "cannot reach Milvus")


def test_search_on_a_missing_database_says_so_and_creates_nothing(tmp_path: Path) -> None:
    result = llmw("search", "GPU", "--milvus-uri", str(tmp_path / "nothing.db"))
    assert_one_line_error(result, 2, "no Milvus Lite database at", "ingest first")
    assert not (tmp_path / "nothing.db").exists()


def test_a_foreign_manifest_collection_is_refused_before_anything_is_created(
    tmp_path: Path,
) -> None:
    uri = str(tmp_path / "foreign.db")
    # Milvus Lite holds a database until its process ends: each side in its own process.
    made = python(FOREIGN_MANIFEST, uri)
    assert made.returncode == 0, made.stderr
    result = llmw("ingest", str(EXAMPLE_DOCS), "--milvus-uri", uri)
    assert_one_line_error(result, 2, "'documents_documents'", "is not the manifest")
    listed = python(LIST_COLLECTIONS, uri)
    assert listed.stdout.split() == ["documents_documents"], listed.stderr


FOREIGN_MANIFEST = """
import sys
from pymilvus import DataType, MilvusClient
client = MilvusClient(sys.argv[1])
schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
schema.add_field("id", DataType.INT64, is_primary=True)
schema.add_field("v", DataType.FLOAT_VECTOR, dim=4)
index = client.prepare_index_params()
index.add_index("v", index_type="FLAT", metric_type="L2")
client.create_collection("documents_documents", schema=schema, index_params=index)
"""
LIST_COLLECTIONS = """
import sys
from pymilvus import MilvusClient
print(*MilvusClient(sys.argv[1]).list_collections())
"""


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_compile_onto_an_existing_file_is_a_message_and_leaves_it(tmp_path: Path) -> None:
    target = tmp_path / "compiled"
    target.write_text("mine")
    result = llmw("compile", "--out", str(target))
    assert_one_line_error(result, 2, "is a file")
    assert target.read_text() == "mine"


@pytest.mark.parametrize("command", [["ingest", str(EXAMPLE_DOCS)], ["search", "GPU"]])
def test_an_empty_collection_name_is_refused(tmp_path: Path, command: list[str]) -> None:
    result = llmw(*command, "--collection", "", "--milvus-uri", str(tmp_path / "m.db"))
    assert_one_line_error(result, 2, "collection")
    assert not (tmp_path / "m.db").exists()


def test_failures_are_described_by_kind() -> None:
    import urllib3

    pool = urllib3.HTTPConnectionPool("10.0.0.9", 9000)
    refused = urllib3.exceptions.MaxRetryError(
        pool, "/b", urllib3.exceptions.NewConnectionError(pool, "[Errno 111] Connection refused")
    )
    assert describe(refused) == (1, "cannot reach 10.0.0.9:9000: Connection refused")
    assert describe(FileExistsError(17, "File exists", "/x")) == (2, "/x: File exists")
    assert describe(ValueError("bad\n  value")) == (2, "bad value")
    assert describe(KeyError("k")) == (1, "KeyError: 'k'")
