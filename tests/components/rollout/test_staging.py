"""Staging a model version into the store: layout, manifest, no-op, refusal, crashes, S3.

Also what staging reads and sends: each source file read once when it is copied, once when a
re-staging compares it, and no write request at all when nothing is staged.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import urllib3.exceptions
from minio import Minio
from minio.error import S3Error

from components.rollout import staging as staging_module
from components.rollout import store as store_module
from components.rollout.copying import SourceChangedError
from components.rollout.manifest import MANIFEST_NAME, ModelManifest
from components.rollout.sources import SourceError
from components.rollout.staging import VersionConflictError, preview_stage, stage_model
from components.rollout.store import StoreError, open_store
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


def tags_of(settings: Any, bucket: str = "models") -> dict[str, Any]:
    client = minio_client(settings)
    return {k: client.get_object_tags(bucket, k) for k in objects(settings, bucket)}


class CountedFile:
    """A file opened for reading, adding what is read to its path's count."""

    def __init__(self, handle: Any, path: str, counts: Counter[str]) -> None:
        self._handle, self._path, self._counts = handle, path, counts

    def read(self, n: int = -1) -> bytes:
        data = self._handle.read(n)
        self._counts[self._path] += len(data)
        return bytes(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def __enter__(self) -> CountedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


class SourceReads:
    """Every open of a file under ``root``, and the bytes read from it, by relative path."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        self.opens: Counter[str] = Counter()
        self.bytes: Counter[str] = Counter()
        real_open = builtins.open

        def counting_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = real_open(file, mode, *args, **kwargs)
            if isinstance(file, str | Path) and "r" in mode:
                path = Path(file).resolve()
                if path.is_relative_to(self.root):
                    relative = path.relative_to(self.root).as_posix()
                    self.opens[relative] += 1
                    return CountedFile(handle, relative, self.bytes)
            return handle

        monkeypatch.setattr(builtins, "open", counting_open)

    def each_once(self, sizes: dict[str, int]) -> None:
        """Assert every file was opened once and read through once, then start counting anew."""
        assert dict(self.opens) == dict.fromkeys(sizes, 1)
        assert dict(self.bytes) == {p: n for p, n in sizes.items() if n}
        self.opens.clear()
        self.bytes.clear()


def sizes_of(folder: Path, paths: list[str]) -> dict[str, int]:
    return {p: (folder / p).stat().st_size for p in paths}


class S3Requests:
    """Every request the minio client sends: (method, object name)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[str, str | None]] = []
        real_execute = Minio._execute

        def execute(client: Minio, method: str, *args: Any, **kwargs: Any) -> Any:
            name = kwargs.get("object_name", args[1] if len(args) > 1 else None)
            self.sent.append((method, name))
            return real_execute(client, method, *args, **kwargs)

        monkeypatch.setattr(Minio, "_execute", execute)

    def writes(self) -> list[tuple[str, str | None]]:
        return [r for r in self.sent if r[0] in ("PUT", "POST", "DELETE")]


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


def test_each_source_file_is_read_once_and_a_restage_reads_once_and_writes_nothing(
    model_dir: Path, make_settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = local_settings(make_settings, tmp_path)
    reads = SourceReads(model_dir, monkeypatch)
    assert stage_model(str(model_dir), "bge", "v1", settings).action == "stage"
    reads.each_once(sizes_of(model_dir, STAGED))  # hashed while copied, not before
    parent = tmp_path / "store" / "bge"
    before = {p: p.stat().st_mtime_ns for p in [parent, *parent.rglob("*")]}
    assert stage_model(str(model_dir), "bge", "v1", settings).action == "unchanged"
    reads.each_once(sizes_of(model_dir, STAGED))  # hashed to compare, nothing copied
    assert {p: p.stat().st_mtime_ns for p in [parent, *parent.rglob("*")]} == before


@pytest.mark.parametrize("change", ["grows", "shrinks"])
def test_a_source_that_changes_size_while_it_is_copied_publishes_nothing(
    model_dir: Path,
    make_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    settings = local_settings(make_settings, tmp_path)
    real_list = staging_module.list_source

    def list_then_change(source: str, settings: Any) -> Any:
        files = real_list(source, settings)
        weights = model_dir / "model.safetensors"
        weights.write_bytes(b"\x02" * (8192 if change == "grows" else 100))  # after its listing
        return files

    monkeypatch.setattr(staging_module, "list_source", list_then_change)
    with pytest.raises(SourceChangedError, match="changed size while it was staged"):
        stage_model(str(model_dir), "bge", "v1", settings)
    assert list((tmp_path / "store" / "bge").iterdir()) == []


@pytest.mark.parametrize("second_bytes", ["same", "other"])
def test_two_stagings_of_one_version_take_turns_and_the_second_compares(
    model_dir: Path,
    make_settings: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    second_bytes: str,
) -> None:
    settings = local_settings(make_settings, tmp_path)
    second_source = write_model(
        tmp_path / "second", weights=b"\x01" * 4096 if second_bytes == "same" else b"\x05" * 4096
    )
    first_copying, release = threading.Event(), threading.Event()
    real_copy = store_module.LocalModelStore._copy

    def held_copy(self: Any, file: Any, target: Path) -> Any:
        if file.location.startswith(str(model_dir) + os.sep):  # the first staging waits here
            first_copying.set()
            release.wait(30)
        return real_copy(self, file, target)

    monkeypatch.setattr(store_module.LocalModelStore, "_copy", held_copy)
    outcome: dict[str, Any] = {}

    def stage(key: str, source: Path) -> None:
        try:
            outcome[key] = stage_model(str(source), "bge", "v1", settings).action
        except Exception as exc:  # the thread's outcome, checked below
            outcome[key] = exc

    first = threading.Thread(target=stage, args=("first", model_dir))
    first.start()
    assert first_copying.wait(30)
    second = threading.Thread(target=stage, args=("second", second_source))
    second.start()
    time.sleep(0.5)  # the second has found no version either, and waits for its turn
    release.set()
    first.join(60)
    second.join(60)
    assert outcome["first"] == "stage"
    if second_bytes == "same":
        assert outcome["second"] == "unchanged"
    else:
        assert isinstance(outcome["second"], VersionConflictError), outcome["second"]
    parent = tmp_path / "store" / "bge"
    assert [p.name for p in parent.iterdir()] == ["v1"]
    assert (parent / "v1" / "model.safetensors").read_bytes() == b"\x01" * 4096


CRASH = """
import os, sys
from components.rollout import copying
from components.rollout.staging import stage_model
from components.settings import Settings

real_read = copying.HashingReader.read

def read_then_crash(self, n=-1):
    data = real_read(self, n)
    if self._file.path == "model.safetensors" and self.size > 7 * 1024 * 1024:
        os._exit(17)  # a kill in the middle of the weights: no cleanup, no finally
    return data

copying.HashingReader.read = read_then_crash
stage_model(sys.argv[1], "bge", "v1", Settings(), workers=1)  # files in order: config.json first
"""
WEIGHTS_SIZE = 12 * 1024 * 1024


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    """The model with 12 MiB of random weights: more than one 5 MiB part on S3."""
    return write_model(tmp_path / "big-model", weights=os.urandom(WEIGHTS_SIZE))


def crash_staging(source: Path, settings: Any) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASH, str(source)],
        cwd=REPO,
        env={**os.environ, **settings_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 17, result.stderr


def test_a_crash_mid_file_leaves_no_version_and_a_rerun_converges(
    big_model: Path, make_settings: Any, tmp_path: Path
) -> None:
    settings = local_settings(make_settings, tmp_path)
    crash_staging(big_model, settings)
    parent = tmp_path / "store" / "bge"
    (staging,) = parent.iterdir()
    assert staging.name.startswith(".staging-v1-")  # the torn copy, hidden
    assert (staging / "model.safetensors").stat().st_size < WEIGHTS_SIZE
    assert not (staging / MANIFEST_NAME).exists()
    assert open_store(settings).read_manifest("bge", "v1") is None
    assert stage_model(str(big_model), "bge", "v1", settings).action == "stage"
    assert [p.name for p in parent.iterdir()] == ["v1"]  # the torn copy is gone
    assert listing(parent / "v1") == sorted([*STAGED, MANIFEST_NAME])
    for path in STAGED:
        assert (parent / "v1" / path).read_bytes() == (big_model / path).read_bytes()
    assert stage_model(str(big_model), "bge", "v1", settings).action == "unchanged"


# MinIO / S3 (moto's server through the minio client).


@pytest.fixture
def s3_store(s3_settings: Any) -> Any:
    client = minio_client(s3_settings)
    if not client.bucket_exists("models"):
        client.make_bucket("models")
    for obj in client.list_objects("models", recursive=True):
        client.remove_object("models", obj.object_name)
    return s3_settings.model_copy(update={"model_store_uri": "s3://models/store"})


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
