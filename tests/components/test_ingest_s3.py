"""An S3 source through a real S3 server (moto, on 127.0.0.1), read with the minio client."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from components.ingest.models import IngestParams
from components.ingest.run import ingest
from components.ingest.sources import open_source
from components.storage.s3 import minio_client
from testing.documents import topic, write_document
from tests.milvus_rows import read_rows


def put(client: Any, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def test_listing_pages_through_more_keys_than_one_page(s3_settings: Any) -> None:
    client = minio_client(s3_settings)
    client.make_bucket("many")
    for i in range(1005):  # S3 lists 1000 keys a page
        put(client, "many", f"notes/n{i:04d}.txt", b"x")
    put(client, "many", "notes/skip.bin", b"x")
    put(client, "many", "other/n.txt", b"x")

    refs = list(open_source("s3://many/notes/", s3_settings).list())
    assert len(refs) == 1006
    assert sum(r.skip_reason is None for r in refs) == 1005
    assert refs[0].uri == "s3://many/notes/n0000.txt"
    assert refs[0].name == "n0000.txt"


def test_missing_bucket_is_a_clear_error(s3_settings: Any) -> None:
    with pytest.raises(FileNotFoundError, match="bucket 'nope' does not exist"):
        open_source("s3://nope/x", s3_settings)


def test_ingest_from_s3_then_rerun_and_prune(s3_settings: Any, tmp_path: Path, minilm: Any) -> None:
    client = minio_client(s3_settings)
    client.make_bucket("docs")
    for i, suffix in enumerate([".md", ".html", ".txt", ".pdf", ".docx"]):
        path = write_document(tmp_path / f"d{i}{suffix}", f"D{i}", topic(f"service{i}"))
        put(client, "docs", f"homelab/d{i}{suffix}", path.read_bytes())

    params = IngestParams(source="s3://docs/homelab")
    first = ingest(params, s3_settings, embedder=minilm)
    assert first.documents.new == 5 and first.documents.failed == 0
    rows = read_rows(s3_settings.milvus_uri)
    assert {r["source_uri"] for r in rows} == {
        f"s3://docs/homelab/d{i}{s}"
        for i, s in enumerate([".md", ".html", ".txt", ".pdf", ".docx"])
    }

    assert ingest(params, s3_settings, embedder=minilm).documents.unchanged == 5

    client.remove_object("docs", "homelab/d0.md")
    pruned = ingest(params.model_copy(update={"prune": True}), s3_settings, embedder=minilm)
    assert pruned.documents.deleted == 1
    assert all(
        r["source_uri"] != "s3://docs/homelab/d0.md" for r in read_rows(s3_settings.milvus_uri)
    )


def test_a_key_is_one_object_and_a_prefix_is_a_folder(s3_settings: Any) -> None:
    client = minio_client(s3_settings)
    client.make_bucket("single")
    for key in ["docs/a.md", "docs/a.mdx", "docs/sub/b.txt", "docsx/c.txt"]:
        put(client, "single", key, b"# x\n")

    one = list(open_source("s3://single/docs/a.md", s3_settings).list())
    assert [(r.uri, r.name, r.skip_reason) for r in one] == [
        ("s3://single/docs/a.md", "a.md", None)
    ]
    folder = sorted(r.uri for r in open_source("s3://single/docs", s3_settings).list())
    assert folder == [
        "s3://single/docs/a.md",
        "s3://single/docs/a.mdx",
        "s3://single/docs/sub/b.txt",
    ]
    assert [r.name for r in open_source("s3://single/docs/sub", s3_settings).list()] == ["b.txt"]


def test_a_url_encoded_key_from_an_event_names_its_object(s3_settings: Any) -> None:
    # S3 and MinIO notifications URL-encode keys; the sensors pass them on as they come.
    client = minio_client(s3_settings)
    client.make_bucket("encoded")
    put(client, "encoded", "docs/release notes+v2.md", b"# x\n")
    put(client, "encoded", "docs/c++.md", b"# y\n")

    refs = list(open_source("s3://encoded/docs/release+notes%2Bv2.md", s3_settings).list())
    assert [(r.uri, r.name) for r in refs] == [
        ("s3://encoded/docs/release notes+v2.md", "release notes+v2.md")
    ]
    # A key that exists as it is wins over its decoded form.
    assert [r.name for r in open_source("s3://encoded/docs/c++.md", s3_settings).list()] == [
        "c++.md"
    ]
