"""The one settings model: LLMW_ environment, an optional YAML file, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from components.settings import Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMW_MILVUS_URI", "http://milvus:19530")
    monkeypatch.setenv("LLMW_EMBEDDING_BATCH_SIZE", "16")
    monkeypatch.setenv("LLMW_EXCLUDE", '["drafts/*"]')
    settings = Settings()
    assert settings.milvus_uri == "http://milvus:19530"
    assert settings.embedding_batch_size == 16
    assert settings.exclude == ["drafts/*"]


def test_yaml_file_is_layered_under_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "llmw.yaml"
    config.write_text("collection: handbook\nchunk_max_characters: 500\nchunk_overlap: 50\n")
    monkeypatch.setenv("LLMW_CONFIG_FILE", str(config))
    monkeypatch.setenv("LLMW_CHUNK_OVERLAP", "20")
    settings = Settings()
    assert (settings.collection, settings.chunk_max_characters) == ("handbook", 500)
    assert settings.chunk_overlap == 20


def test_a_missing_config_file_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMW_CONFIG_FILE", "/nonexistent/llmw.yaml")
    with pytest.raises(FileNotFoundError, match=r"/nonexistent/llmw\.yaml"):
        Settings()


def test_invalid_values_name_the_field() -> None:
    with pytest.raises(ValidationError, match="chunk_overlap"):
        Settings(chunk_max_characters=100, chunk_overlap=100)
    with pytest.raises(ValidationError, match="milvus_write_batch_bytes"):
        Settings(milvus_write_batch_bytes=64 * 1024 * 1024)


def test_secrets_are_not_printed() -> None:
    settings = Settings(s3_secret_key="hunter2", milvus_token="root:Milvus")
    assert "hunter2" not in repr(settings) and "root:Milvus" not in str(settings)
