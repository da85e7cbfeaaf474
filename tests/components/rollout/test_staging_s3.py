"""Staging into MinIO / S3 (moto's server through the minio client): layout and tags, one read
per file, refusals before any write, crashes and reruns, retries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from minio import Minio
from minio.error import S3Error

from components.rollout import staging as staging_module
from components.rollout.copying import SourceChangedError
from components.rollout.manifest import MANIFEST_NAME, ModelManifest
from components.rollout.sources import SourceError
from components.rollout.staging import VersionConflictError, preview_stage, stage_model
from components.rollout.store import StoreError, open_store
from components.storage.s3 import minio_client
from tests.components.rollout.staging_support import (
    STAGED,
    S3Requests,
    SourceReads,
    crash_staging,
    objects,
    sha,
    sizes_of,
    tags_of,
)


def test_s3_store_layout_tags_and_manifest(model_dir: Path, s3_store: Any) -> None:
    result = stage_model(str(model_dir), "bge", "v1", s3_store)
    assert result.uri == "s3://models/store/bge/v1/"
    found = objects(s3_store)
    assert sorted(found) == sorted(f"store/bge/v1/{p}" for p in [*STAGED, MANIFEST_NAME])
    client = minio_client(s3_store)
    for entry in result.manifest.files:
        tags = client.get_object_tags("models", f"store/bge/v1/{entry.path}")
        assert tags == {"sha256": entry.sha256}
        body = client.get_object("models", f"store/bge/v1/{entry.path}").read()
        assert body == (model_dir / entry.path).read_bytes()
        assert entry.sha256 == sha(body)
    manifest = client.get_object("models", f"store/bge/v1/{MANIFEST_NAME}").read()
    assert ModelManifest.model_validate(json.loads(manifest)) == result.manifest
    assert stage_model(str(model_dir), "bge", "v1", s3_store).action == "unchanged"


def test_s3_each_file_is_read_once_and_a_restage_sends_no_write(
    big_model: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights_sha = sha((big_model / "model.safetensors").read_bytes())
    reads = SourceReads(big_model, monkeypatch)
    requests = S3Requests(monkeypatch)
    result = stage_model(str(big_model), "bge", "v1", s3_store)
    assert result.action == "stage"
    reads.each_once(sizes_of(big_model, STAGED))
    weights = "store/bge/v1/model.safetensors"
    assert ("POST", weights) in requests.sent  # a multipart upload: its bytes were read once too
    body = minio_client(s3_store).get_object("models", weights).read()
    assert sha(body) == result.manifest.files[1].sha256 == weights_sha
    requests.sent.clear()
    assert stage_model(str(big_model), "bge", "v1", s3_store).action == "unchanged"
    reads.each_once(sizes_of(big_model, STAGED))
    assert requests.writes() == []


def test_s3_other_bytes_are_refused_before_any_object_is_written(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage_model(str(model_dir), "bge", "v1", s3_store)
    before = {k: (o.etag, o.last_modified) for k, o in objects(s3_store).items()}
    tags = tags_of(s3_store)
    (model_dir / "model.safetensors").write_bytes(b"\x03" * 4096)  # same size, other bytes
    requests = S3Requests(monkeypatch)
    with pytest.raises(VersionConflictError, match=r"model\.safetensors differs"):
        stage_model(str(model_dir), "bge", "v1", s3_store)
    assert requests.writes() == []
    assert {k: (o.etag, o.last_modified) for k, o in objects(s3_store).items()} == before
    assert tags_of(s3_store) == tags


def test_s3_source_folder_and_object_into_the_local_store(
    model_dir: Path, s3_store: Any, tmp_path: Path
) -> None:
    stage_model(str(model_dir), "bge", "v1", s3_store)
    local = s3_store.model_copy(update={"model_store_uri": str(tmp_path / "local")})
    copied = stage_model("s3://models/store/bge/v1", "bge", "v1", local)
    assert [f.path for f in copied.manifest.files] == STAGED  # the store's manifest left out
    assert copied.manifest.digest == stage_model(str(model_dir), "x", "v1", local).manifest.digest
    single = stage_model("s3://models/store/bge/v1/config.json", "cfg", "v1", local)
    assert [f.path for f in single.manifest.files] == ["config.json"]
    with pytest.raises(SourceError, match="holds no file"):
        stage_model("s3://models/nothing-here/", "m", "v1", local)


def test_s3_source_into_the_s3_store_streams_each_object_once(
    big_model: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = stage_model(str(big_model), "bge", "v1", s3_store)
    requests = S3Requests(monkeypatch)
    copied = stage_model("s3://models/store/bge/v1", "bge-copy", "v1", s3_store)
    assert copied.manifest.files == first.manifest.files
    reads = [n for m, n in requests.sent if m == "GET" and n and n.startswith("store/bge/")]
    assert sorted(reads) == sorted(f"store/bge/v1/{p}" for p in STAGED)  # each object once
    body = minio_client(s3_store).get_object("models", "store/bge-copy/v1/model.safetensors")
    assert body.read() == (big_model / "model.safetensors").read_bytes()


def test_a_missing_bucket_is_refused_before_the_source_is_read(
    model_dir: Path, s3_settings: Any
) -> None:
    settings = s3_settings.model_copy(update={"model_store_uri": "s3://no-such-bucket/models"})
    absent = model_dir / "absent"  # were the source read first, this would be the refusal
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        preview_stage(str(absent), "m", "v1", settings)
    with pytest.raises(StoreError, match="create it first"):
        stage_model(str(model_dir), "m", "v1", settings)
    assert not minio_client(settings).bucket_exists("no-such-bucket")


def test_s3_crash_mid_file_publishes_nothing_and_the_rerun_resumes(
    big_model: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_staging(big_model, s3_store)
    # config.json complete and tagged; the weights' multipart upload never completed: no object.
    assert sorted(objects(s3_store)) == ["store/bge/v1/config.json"]
    assert open_store(s3_store).read_manifest("bge", "v1") is None
    reads = SourceReads(big_model, monkeypatch)
    requests = S3Requests(monkeypatch)
    assert stage_model(str(big_model), "bge", "v1", s3_store).action == "stage"
    reads.each_once(sizes_of(big_model, STAGED))  # config.json hashed and kept, the rest uploaded
    written = {name for _, name in requests.writes()}
    assert "store/bge/v1/config.json" not in written
    assert {"store/bge/v1/model.safetensors", "store/bge/v1/tokenizer/vocab.txt"} <= written
    assert sorted(objects(s3_store)) == sorted(
        f"store/bge/v1/{p}" for p in [*STAGED, MANIFEST_NAME]
    )
    client = minio_client(s3_store)
    for path in STAGED:
        body = client.get_object("models", f"store/bge/v1/{path}").read()
        assert body == (big_model / path).read_bytes()


def test_s3_rerun_with_other_bytes_after_a_crash_removes_what_the_crash_left(
    big_model: Path, s3_store: Any, tmp_path: Path
) -> None:
    crash_staging(big_model, s3_store)  # left config.json of these bytes
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    result = stage_model(str(other), "bge", "v1", s3_store)  # v1 was never published
    assert [f.path for f in result.manifest.files] == ["model.safetensors"]
    assert sorted(objects(s3_store)) == [
        f"store/bge/v1/{MANIFEST_NAME}",
        "store/bge/v1/model.safetensors",
    ]


def test_s3_an_object_left_with_other_bytes_is_uploaded_again(
    model_dir: Path, s3_store: Any
) -> None:
    client = minio_client(s3_store)
    stage_model(str(model_dir), "bge", "v1", s3_store)
    client.remove_object("models", f"store/bge/v1/{MANIFEST_NAME}")  # as if it crashed before it
    (model_dir / "config.json").write_text('{"a": 7}')  # same size, other bytes
    result = stage_model(str(model_dir), "bge", "v1", s3_store)
    assert result.action == "stage"
    assert client.get_object("models", "store/bge/v1/config.json").read() == b'{"a": 7}'
    assert client.get_object_tags("models", "store/bge/v1/config.json") == {
        "sha256": sha(b'{"a": 7}')
    }


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_s3_a_source_that_changes_size_while_uploading_leaves_no_object(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    real_list = staging_module.list_source

    def list_then_change(source: str, settings: Any) -> Any:
        files = real_list(source, settings)
        weights = model_dir / "model.safetensors"
        weights.write_bytes(b"\x09" * (8192 if change == "grows" else 100))
        return files

    monkeypatch.setattr(staging_module, "list_source", list_then_change)
    with pytest.raises(SourceChangedError):
        stage_model(str(model_dir), "bge", "v1", s3_store)
    assert "store/bge/v1/model.safetensors" not in objects(s3_store)
    assert f"store/bge/v1/{MANIFEST_NAME}" not in objects(s3_store)


def s3_error(code: str) -> S3Error:
    return S3Error(None, code, f"injected {code}", "/models", "req", "host")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        lambda: urllib3.exceptions.ProtocolError("connection reset mid-body"),
        lambda: s3_error("SlowDown"),
    ],
    ids=["connection-reset", "slow-down"],
)
def test_s3_a_transient_error_retries_the_file_from_its_first_byte(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch, error: Any
) -> None:
    real_put = Minio._put_object
    failed: list[str] = []

    def flaky(client: Minio, bucket: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name.endswith("model.safetensors") and not failed:
            failed.append(name)  # its bytes were read and hashed: the retry must start over
            raise error()
        return real_put(client, bucket, name, *args, **kwargs)

    monkeypatch.setattr(Minio, "_put_object", flaky)
    result = stage_model(str(model_dir), "bge", "v1", s3_store)
    assert failed == ["store/bge/v1/model.safetensors"]
    weights = (model_dir / "model.safetensors").read_bytes()
    assert result.manifest.files[1].sha256 == sha(weights)
    client = minio_client(s3_store)
    assert client.get_object("models", "store/bge/v1/model.safetensors").read() == weights


def test_s3_a_refusal_is_not_retried(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[str] = []

    def refuse(client: Minio, bucket: str, name: str, *args: Any, **kwargs: Any) -> Any:
        attempts.append(name)
        raise s3_error("AccessDenied")

    monkeypatch.setattr(Minio, "_put_object", refuse)
    with pytest.raises(S3Error, match="AccessDenied"):
        stage_model(str(model_dir), "bge", "v1", s3_store, workers=1)
    assert attempts == ["store/bge/v1/config.json"]  # once, and no other file started
