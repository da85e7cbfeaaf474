"""What the staging tests share: source read and S3 request counters, listings, a crash
in the middle of a file, and the fixtures for a big model and an emptied S3 store."""

from __future__ import annotations

import builtins
import hashlib
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from minio import Minio

from components.settings import settings_env
from components.storage.s3 import minio_client
from tests.components.rollout.conftest import BIG_WEIGHTS_SIZE
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
WEIGHTS_SIZE = BIG_WEIGHTS_SIZE


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
