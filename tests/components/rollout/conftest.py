"""Fixtures for the rollout tests: model folders, stores, the catalog and the inventory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.cluster.inventory import ClusterInventory, default_inventory_path, load_inventory
from components.rollout.catalog import ServingCatalog, load_catalog
from components.settings import Settings
from components.storage.s3 import minio_client


def write_model(folder: Path, weights: bytes = b"\x01" * 4096, config: str = '{"a": 1}') -> Path:
    """A small model folder: weights, a config, a tokenizer file in a subfolder, a hidden file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(config)
    (folder / "tokenizer").mkdir(exist_ok=True)
    (folder / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (folder / ".cache").mkdir(exist_ok=True)
    (folder / ".cache" / "junk").write_text("never staged")
    return folder


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return write_model(tmp_path / "model")


@pytest.fixture(scope="session")
def shipped() -> Iterator[Settings]:
    """The shipped defaults (no LLMW_* from the shell), once per session; copy to change."""
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("LLMW_")}
    try:
        settings = Settings()
    finally:
        os.environ.update(saved)
    yield settings


@pytest.fixture(scope="session")
def inventory() -> ClusterInventory:
    return load_inventory()


@pytest.fixture(scope="session")
def catalog() -> ServingCatalog:
    return load_catalog()


def inventory_with(tmp_path: Path, change: Any) -> Path:
    """A copy of the shipped inventory, changed by ``change(data)``, written to a file."""
    data = yaml.safe_load(default_inventory_path().read_text())
    change(data)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def node_of(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in data["nodes"] if n["name"] == name)


# More than one 5 MiB part on S3.
BIG_WEIGHTS_SIZE = 12 * 1024 * 1024


@pytest.fixture
def big_model(tmp_path: Path) -> Path:
    """The model with 12 MiB of random weights: more than one 5 MiB part on S3."""
    return write_model(tmp_path / "big-model", weights=os.urandom(BIG_WEIGHTS_SIZE))


@pytest.fixture
def s3_store(s3_settings: Any) -> Any:
    client = minio_client(s3_settings)
    if not client.bucket_exists("models"):
        client.make_bucket("models")
    for obj in client.list_objects("models", recursive=True):
        client.remove_object("models", obj.object_name)
    return s3_settings.model_copy(update={"model_store_uri": "s3://models/store"})
