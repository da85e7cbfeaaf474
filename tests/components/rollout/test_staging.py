"""Staging a model version into the store: layout, manifest, no-op, refusal, crashes, S3.

Also what staging reads and sends: each source file read once when it is copied, once when a
re-staging compares it, and no write request at all when nothing is staged.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from components.rollout import staging as staging_module
from components.rollout import store as store_module
from components.rollout.copying import SourceChangedError
from components.rollout.manifest import MANIFEST_NAME, ModelManifest
from components.rollout.sources import SourceError
from components.rollout.staging import VersionConflictError, stage_model
from components.rollout.store import open_store
from tests.components.rollout.conftest import write_model
from tests.components.rollout.staging_support import (
    STAGED,
    WEIGHTS_SIZE,
    SourceReads,
    crash_staging,
    listing,
    local_settings,
    sha,
    sizes_of,
)


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
