"""Staging a model version into the store: layout, manifest, no-op, refusal, crashes, S3."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from components.rollout import store as store_module
from components.rollout.manifest import MANIFEST_NAME, ModelManifest
from components.rollout.sources import SourceError
from components.rollout.staging import VersionConflictError, preview_stage, stage_model
from components.rollout.store import SourceChangedError, StoreError, open_store
from components.settings import settings_env
from components.storage.s3 import minio_client
from tests.components.rollout.conftest import write_model
from tests.conftest import REPO

STAGED = ["config.json", "model.safetensors", "tokenizer/vocab.txt"]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_settings(make_settings: Any, tmp_path: Path) -> Any:
    return make_settings(model_store_uri=str(tmp_path / "store"))


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def objects(settings: Any, bucket: str = "models") -> dict[str, Any]:
    client = minio_client(settings)
    return {o.object_name: o for o in client.list_objects(bucket, recursive=True)}


# The local store.


def test_stage_writes_the_layout_and_a_manifest_of_every_file(
    model_dir: Path, make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    result = stage_model(str(model_dir), "bge", "v1", settings)
    version = tmp_path / "store" / "bge" / "v1"
    assert result.action == "stage"
    assert result.uri == str(version.resolve()) + "/"
    assert listing(version) == sorted([*STAGED, MANIFEST_NAME])  # .cache left out
    manifest = ModelManifest.model_validate_json((version / MANIFEST_NAME).read_text())
    assert manifest == result.manifest
    assert [f.path for f in manifest.files] == STAGED
    for entry in manifest.files:
        data = (model_dir / entry.path).read_bytes()
        assert (entry.size, entry.sha256) == (len(data), sha(data))
        assert (version / entry.path).read_bytes() == data
    assert manifest.source == str(model_dir.resolve())
    assert manifest.created.endswith("Z")
    assert manifest.weights_bytes == 4096  # the .safetensors file only
    assert manifest.total_bytes == sum(f.size for f in manifest.files)
    assert list((tmp_path / "store" / "bge").iterdir()) == [version]  # no staging folder left


def test_restaging_the_same_bytes_is_a_noop(
    model_dir: Path, make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    first = stage_model(str(model_dir), "bge", "v1", settings)
    manifest_file = tmp_path / "store" / "bge" / "v1" / MANIFEST_NAME
    before = manifest_file.stat().st_mtime_ns
    copy = write_model(tmp_path / "elsewhere")  # same bytes, another source
    again = stage_model(str(copy), "bge", "v1", settings)
    assert again.action == "unchanged"
    assert again.manifest == first.manifest  # the stored one: first source, first time
    assert manifest_file.stat().st_mtime_ns == before


def test_other_bytes_under_an_existing_version_are_refused_before_anything_is_written(
    model_dir: Path, make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    stage_model(str(model_dir), "bge", "v1", settings)
    stored = {p: (tmp_path / "store" / "bge" / "v1" / p).read_bytes() for p in STAGED}
    (model_dir / "config.json").write_text('{"a": 2}')
    (model_dir / "extra.txt").write_text("new")
    with pytest.raises(VersionConflictError) as refused:
        stage_model(str(model_dir), "bge", "v1", settings)
    message = str(refused.value)
    assert "config.json differs" in message and "extra.txt only in the source" in message
    assert "stage a new version" in message
    assert {p: (tmp_path / "store" / "bge" / "v1" / p).read_bytes() for p in STAGED} == stored
    assert sorted(p.name for p in (tmp_path / "store" / "bge").iterdir()) == ["v1"]
    assert stage_model(str(model_dir), "bge", "v2", settings).action == "stage"


def test_a_single_file_and_a_hugging_face_snapshot_of_symlinks(
    make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"gguf" * 100)
    single = stage_model(str(weights), "tiny", "q4", settings)
    assert [(f.path, f.size) for f in single.manifest.files] == [("model.gguf", 400)]
    blobs = tmp_path / "hub" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "abc").write_bytes(b"weights")
    snapshot = tmp_path / "hub" / "snapshots" / "rev"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(blobs / "abc")
    staged = stage_model(str(snapshot), "snap", "v1", settings)
    target = tmp_path / "store" / "snap" / "v1" / "model.safetensors"
    assert not target.is_symlink() and target.read_bytes() == b"weights"
    assert staged.manifest.files[0].sha256 == sha(b"weights")


@pytest.mark.parametrize(
    ("name", "version", "says"),
    [("BGE", "v1", "model name"), ("bge", "v/1", "version"), ("../x", "v1", "model name")],
)
def test_names_and_versions_are_one_path_segment(
    model_dir: Path, make_settings: Any, tmp_path: Path, name: str, version: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        stage_model(str(model_dir), name, version, local_settings(make_settings, tmp_path))
    assert not (tmp_path / "store").exists()


def test_a_missing_or_empty_source_is_refused(make_settings: Any, tmp_path: Path) -> None:
    settings = local_settings(make_settings, tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        stage_model(str(tmp_path / "nope"), "m", "v1", settings)
    (tmp_path / "empty" / ".git").mkdir(parents=True)
    with pytest.raises(SourceError, match="holds no file"):
        stage_model(str(tmp_path / "empty"), "m", "v1", settings)


def test_a_source_that_changes_while_it_is_copied_publishes_nothing(
    model_dir: Path, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = local_settings(make_settings, tmp_path)
    real_copy = store_module.LocalModelStore._copy

    def copy_then_change(self: Any, file: Any, expected: Any, target: Path) -> None:
        (model_dir / "model.safetensors").write_bytes(b"\x02" * 4096)  # after it was hashed
        real_copy(self, file, expected, target)

    monkeypatch.setattr(store_module.LocalModelStore, "_copy", copy_then_change)
    with pytest.raises(SourceChangedError, match="changed while it was staged"):
        stage_model(str(model_dir), "bge", "v1", settings)
    assert list((tmp_path / "store" / "bge").iterdir()) == []


CRASH = """
import os, sys
from components.rollout import store
from components.rollout.staging import stage_model
from components.settings import Settings

cls = getattr(store, sys.argv[2])
method = "_copy" if sys.argv[2] == "LocalModelStore" else "_upload"
real = getattr(cls, method)

def crash_after_one(self, *args):
    real(self, *args)
    os._exit(17)  # a kill: no cleanup, no finally

setattr(cls, method, crash_after_one)
stage_model(sys.argv[1], "bge", "v1", Settings())
"""


def crash_staging(source: Path, settings: Any, store_class: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASH, str(source), store_class],
        cwd=REPO,
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 17, result.stderr


def test_a_crash_mid_stage_leaves_no_version_and_a_rerun_converges(
    model_dir: Path, make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    crash_staging(model_dir, settings, "LocalModelStore")
    parent = tmp_path / "store" / "bge"
    (staging,) = parent.iterdir()
    assert staging.name.startswith(".staging-v1-")  # the torn copy, hidden
    assert open_store(settings).read_manifest("bge", "v1") is None
    assert stage_model(str(model_dir), "bge", "v1", settings).action == "stage"
    assert [p.name for p in parent.iterdir()] == ["v1"]  # the torn copy is gone
    assert listing(parent / "v1") == sorted([*STAGED, MANIFEST_NAME])
    assert stage_model(str(model_dir), "bge", "v1", settings).action == "unchanged"


# MinIO / S3 (moto's server through the minio client).


@pytest.fixture
def s3_store(s3_settings: Any) -> Any:
    client = minio_client(s3_settings)
    if not client.bucket_exists("models"):
        client.make_bucket("models")
    for obj in client.list_objects("models", recursive=True):
        client.remove_object("models", obj.object_name)
    return s3_settings.model_copy(update={"model_store_uri": "s3://models/store"})


def test_s3_store_layout_metadata_and_manifest(model_dir: Path, s3_store: Any) -> None:
    result = stage_model(str(model_dir), "bge", "v1", s3_store)
    assert result.uri == "s3://models/store/bge/v1/"
    found = objects(s3_store)
    assert sorted(found) == sorted(f"store/bge/v1/{p}" for p in [*STAGED, MANIFEST_NAME])
    client = minio_client(s3_store)
    for entry in result.manifest.files:
        stat = client.stat_object("models", f"store/bge/v1/{entry.path}")
        assert stat.metadata["x-amz-meta-sha256"] == entry.sha256
        body = client.get_object("models", f"store/bge/v1/{entry.path}").read()
        assert body == (model_dir / entry.path).read_bytes()
    manifest = client.get_object("models", f"store/bge/v1/{MANIFEST_NAME}").read()
    assert ModelManifest.model_validate(json.loads(manifest)) == result.manifest
    assert stage_model(str(model_dir), "bge", "v1", s3_store).action == "unchanged"


def test_s3_other_bytes_are_refused_before_any_object_is_written(
    model_dir: Path, s3_store: Any
) -> None:
    stage_model(str(model_dir), "bge", "v1", s3_store)
    before = {k: (o.etag, o.last_modified) for k, o in objects(s3_store).items()}
    (model_dir / "model.safetensors").write_bytes(b"\x03" * 10)
    with pytest.raises(VersionConflictError, match=r"model\.safetensors differs"):
        stage_model(str(model_dir), "bge", "v1", s3_store)
    assert {k: (o.etag, o.last_modified) for k, o in objects(s3_store).items()} == before


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


def test_s3_crash_mid_stage_publishes_nothing_and_the_rerun_resumes(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    crash_staging(model_dir, s3_store, "S3ModelStore")
    assert sorted(objects(s3_store)) == ["store/bge/v1/config.json"]  # no manifest: no version
    assert open_store(s3_store).read_manifest("bge", "v1") is None
    uploaded: list[str] = []
    real_upload = store_module.S3ModelStore._upload

    def spy(self: Any, file: Any, expected: Any, key: str) -> None:
        uploaded.append(file.path)
        real_upload(self, file, expected, key)

    monkeypatch.setattr(store_module.S3ModelStore, "_upload", spy)
    assert stage_model(str(model_dir), "bge", "v1", s3_store).action == "stage"
    assert uploaded == ["model.safetensors", "tokenizer/vocab.txt"]  # config.json was there
    assert sorted(objects(s3_store)) == sorted(
        f"store/bge/v1/{p}" for p in [*STAGED, MANIFEST_NAME]
    )


def test_s3_rerun_with_other_bytes_after_a_crash_removes_what_the_crash_left(
    model_dir: Path, s3_store: Any, tmp_path: Path
) -> None:
    crash_staging(model_dir, s3_store, "S3ModelStore")  # left config.json of these bytes
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.safetensors").write_bytes(b"other weights")
    result = stage_model(str(other), "bge", "v1", s3_store)  # v1 was never published
    assert [f.path for f in result.manifest.files] == ["model.safetensors"]
    assert sorted(objects(s3_store)) == [
        f"store/bge/v1/{MANIFEST_NAME}",
        "store/bge/v1/model.safetensors",
    ]


def test_s3_a_source_that_changes_while_uploading_leaves_no_object_claiming_its_hash(
    model_dir: Path, s3_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upload = store_module.S3ModelStore._upload

    def change_then_upload(self: Any, file: Any, expected: Any, key: str) -> None:
        if file.path == "model.safetensors":
            (model_dir / "model.safetensors").write_bytes(b"\x09" * 4096)
        real_upload(self, file, expected, key)

    monkeypatch.setattr(store_module.S3ModelStore, "_upload", change_then_upload)
    with pytest.raises(SourceChangedError):
        stage_model(str(model_dir), "bge", "v1", s3_store)
    assert sorted(objects(s3_store)) == ["store/bge/v1/config.json"]  # no manifest, no liar
