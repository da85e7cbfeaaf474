"""kfp.local runs of the whole pipeline leave the same rows in Milvus as ``llmw ingest``."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from components.ingest import ingest
from components.ingest_models import IngestParams
from pipelines.local_run import LocalRunError, run_local, settings_env
from tests.documents import topic, write_document
from tests.milvus_rows import read_manifest, read_rows

NAME = "document-ingestion"
pytestmark = pytest.mark.slow

# Loaded by every Python subprocess that has this folder on PYTHONPATH (the kfp.local component
# runs): plans one shard per document and makes chosen shards fail, recording each attempt.
FAULTS = """
import functools, json, os

_config = json.loads(os.environ["TEST_KFP_FAULTS"])

import components.ingest_steps as steps

steps.plan_shards = functools.partial(steps.plan_shards, docs_per_shard=1)
_real = steps.ingest_shard


def ingest_shard(params, shard="0/1", settings=None):
    log = _config["log"]
    with open(log, "a") as out:
        out.write(shard + "\\n")
    with open(log) as seen:
        attempts = [line.strip() for line in seen].count(shard)
    if attempts <= _config["failures"].get(shard, 0):
        raise RuntimeError(f"injected failure of shard {shard}, attempt {attempts}")
    return _real(params, shard, settings)


steps.ingest_shard = ingest_shard
"""


def corpus(folder: Path) -> Path:
    for i, name in enumerate(["khelben", "drizzt", "danilo"]):
        suffix = [".md", ".txt", ".html"][i]
        write_document(folder / f"{name}{suffix}", name, topic(name, words=120))
    return folder


def plain_rows(source: Path, uri: Path, settings: Any, minilm: Any) -> list[dict[str, Any]]:
    ingest(IngestParams(source=str(source), milvus_uri=str(uri)), settings, embedder=minilm)
    return read_rows(str(uri))


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    monkeypatch.chdir(tmp_path)  # the default pipeline root, .llmw/kfp-local, lands here


def test_kfp_local_run_equals_plain_ingest(
    local_env: None, tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    source = corpus(tmp_path / "docs")
    expected = plain_rows(source, tmp_path / "plain.db", make_settings(), minilm)

    started = time.perf_counter()
    report = run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "kfp.db")})
    elapsed = time.perf_counter() - started
    print(f"kfp-local run: {elapsed:.1f} s")
    # A rerun writes nothing. (Before reading kfp.db here: Milvus Lite admits one process per
    # database file, and this process would hold it until exit.)
    again = run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "kfp.db")})
    assert again["documents"]["unchanged"] == 3 and again["chunks"] == 0

    assert read_rows(str(tmp_path / "kfp.db")) == expected
    assert read_manifest(str(tmp_path / "kfp.db")) == read_manifest(str(tmp_path / "plain.db"))
    assert report["documents"] == {
        "seen": 3, "new": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0, "skipped": 0
    }  # fmt: skip
    assert report["chunks"] == len(expected)
    assert isinstance(report["chunks"], int)
    # The report step's artifacts: Kubeflow Metrics and the Markdown summary.
    runs = sorted((tmp_path / ".llmw" / "kfp-local").glob("document-ingestion-*"))
    assert len(runs) == 2
    summary = (runs[0] / "report" / "summary").read_text()
    assert summary.startswith("# Document ingestion") and f"**{len(expected)}** chunks" in summary
    outputs = json.loads((runs[0] / "report" / "executor_output.json").read_text())
    metrics = outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["chunks"] == len(expected) and metrics["documents_new"] == 3


def test_shards_fan_out_and_a_failing_shard_is_retried(
    local_env: None,
    tmp_path: Path,
    make_settings: Any,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = corpus(tmp_path / "docs")
    expected = plain_rows(source, tmp_path / "plain.db", make_settings(), minilm)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(FAULTS))
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("TEST_KFP_FAULTS", json.dumps({"log": str(log), "failures": {"1/3": 1}}))

    # The settings passed in reach the components: milvus_uri comes from them, not the params.
    settings = make_settings(milvus_uri=str(tmp_path / "kfp.db"))
    report = run_local(NAME, {"source": str(source)}, settings)

    attempts = log.read_text().split()
    assert sorted(attempts) == ["0/3", "1/3", "1/3", "2/3"]
    assert read_rows(str(tmp_path / "kfp.db")) == expected
    assert report["documents"]["new"] == 3 and report["chunks"] == len(expected)


def test_a_shard_failing_past_its_retries_fails_the_run(
    local_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    write_document(source / "only.md", "only", topic("only"))
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(FAULTS))
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("TEST_KFP_FAULTS", json.dumps({"log": str(log), "failures": {"0/1": 99}}))

    with pytest.raises(LocalRunError, match="ingest-shard") as caught:
        run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "kfp.db")})
    assert "\x1b[" not in str(caught.value)
    assert log.read_text().split() == ["0/1"] * 4  # the first attempt and three retries


def test_settings_env_round_trips(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from components.settings import Settings

    settings = Settings(
        milvus_token="t0ken",
        include=["*.md", "*.pdf"],
        s3_secure=True,
        embedding_batch_size=7,
        cluster_inventory=Path("/etc/llmw/inventory.yaml"),
    )
    for key, value in settings_env(settings).items():
        monkeypatch.setenv(key, value)
    assert Settings() == settings
