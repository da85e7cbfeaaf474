"""Shared fixtures: real services bound to 127.0.0.1, settings on temporary paths, the model."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.offline import configure_offline
from components.settings import packaged_schemas_dir

configure_offline()
# The suite embeds with torch (what its figures and fingerprints were written against): the
# gated default (LLMW_EMBEDDING_BACKEND=auto) would export and gate MiniLM once per working
# folder. tests/components/test_embedding_backends.py tests the backends and auto themselves.
os.environ.setdefault("LLMW_EMBEDDING_BACKEND", "torch")
# Checks both engines' local-run tests share assert in these helper modules: pytest explains
# a failing assert only in modules it rewrites.
pytest.register_assert_rewrite("tests.batch_runs", "tests.ingestion_runs")

# The bridge fixtures (nats_server, runs_dir, start_bridge) for every test that wants them.
pytest_plugins = ["testing.bridge_fixtures"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DOCS = REPO / "examples" / "docs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    from components.ingest.embedders import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder("all-MiniLM-L6-v2", device="cpu", batch_size=32)


@pytest.fixture
def make_settings(tmp_path: Path) -> Any:
    """Settings on a temporary Milvus Lite file; partitioning inline unless asked otherwise."""
    from components.settings import Settings

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "milvus_uri": str(tmp_path / "milvus.db"),
            "partition_workers": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1, used through the minio client as MinIO would be."""
    from testing.s3_server import threaded_s3_server

    with threaded_s3_server() as server:
        yield server


@pytest.fixture
def s3_settings(s3_server: dict[str, str], make_settings: Any) -> Any:
    return make_settings(
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_region=s3_server["region"],
        s3_secure=False,
    )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves 127.0.0.1, so a download attempt fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise OSError(f"test forbids network access to {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite tests/golden/ files from what the code renders now",
    )


GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Any:
    """Compare text with tests/golden/<name>; `pytest --update-goldens` rewrites the file."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if request.config.getoption("--update-goldens"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"no golden file {path}; run pytest --update-goldens"
        assert text == path.read_text(), f"{name} differs from its golden file"

    return check


@pytest.fixture(scope="session")
def schemas_dir() -> Path:
    """The pinned upstream schemas, as shipped in the package."""
    return packaged_schemas_dir()


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight GPT-2 and a byte-level BPE tokenizer trained here (no download)."""
    from testing.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No LLMW_* variable (nor config file) from the developer's shell leaks into settings."""
    import os

    for key in list(os.environ):
        if key.startswith("LLMW_"):
            monkeypatch.delenv(key)


@pytest.fixture
def default_settings(clean_env: None) -> Any:
    """The shipped defaults: what the golden files are compiled and rendered with."""
    from components.settings import Settings

    return Settings()
