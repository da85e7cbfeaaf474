"""argo-local runs of the rendered document-ingestion template leave the same rows in Milvus as
``llmw ingest`` (components.ingest.ingest) on the same input."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from components.ingest import ingest
from components.ingest_models import IngestParams
from components.registry import ParameterError
from tests.documents import topic, write_document
from tests.milvus_rows import read_manifest, read_rows
from workflows.local_runner import LocalRunError, run_local

NAME = "document-ingestion"
pytestmark = pytest.mark.slow

# Loaded by every Python subprocess that has this folder on PYTHONPATH (the argo-local steps):
# plans one shard per document and makes chosen shards fail, recording each attempt.
FAULTS = """
import functools, json, os

_config = json.loads(os.environ["TEST_ARGO_FAULTS"])

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
    monkeypatch.chdir(tmp_path)  # the default work dir, .llmw/argo-local, lands here


def faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: dict[str, int]) -> Path:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(FAULTS))
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("TEST_ARGO_FAULTS", json.dumps({"log": str(log), "failures": failures}))
    return log


def test_argo_local_run_equals_plain_ingest(
    local_env: None, tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    source = corpus(tmp_path / "docs")
    expected = plain_rows(source, tmp_path / "plain.db", make_settings(), minilm)
    params = {"source": str(source), "milvus_uri": str(tmp_path / "argo.db")}

    started = time.perf_counter()
    run = run_local(NAME, params, run_name="document-ingestion-first")
    print(f"argo-local run: {time.perf_counter() - started:.1f} s")
    # A rerun writes nothing. (Before reading argo.db here: Milvus Lite admits one process per
    # database file, and this process would hold it until exit.)
    again = run_local(NAME, params)
    assert again["report"]["documents"]["unchanged"] == 3 and again["report"]["chunks"] == 0

    assert read_rows(str(tmp_path / "argo.db")) == expected
    assert read_manifest(str(tmp_path / "argo.db")) == read_manifest(str(tmp_path / "plain.db"))
    report = run["report"]
    assert report["documents"] == {
        "seen": 3, "new": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0, "skipped": 0
    }  # fmt: skip
    assert report["chunks"] == len(expected)
    assert run["status"] == "Succeeded" and run["workflow"] == "document-ingestion-first"
    nodes = {n["display_name"]: n for n in run["nodes"]}
    assert [n["phase"] for n in nodes.values()] == ["Succeeded"] * len(nodes)
    assert {"plan", "ingest-shard(0:0/1)", "report", "record-status"} <= set(nodes)
    # The exit handler recorded the final status.
    assert json.loads(nodes["record-status"]["outputs"]["result"]) == {
        "workflow": "document-ingestion-first",
        "template": NAME,
        "status": "Succeeded",
    }
    # The report's Markdown summary artifact, at its S3 key under the workflow's name.
    summary = Path(nodes["report"]["outputs"]["artifacts"]["summary"])
    assert summary == (
        tmp_path
        / ".llmw/argo-local/artifacts/document-ingestion/document-ingestion-first/summary.md"
    )
    text = summary.read_text()
    assert text.startswith("# Document ingestion") and f"**{len(expected)}** chunks" in text


def test_shards_fan_out_and_a_failing_shard_is_retried(
    local_env: None,
    tmp_path: Path,
    make_settings: Any,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = corpus(tmp_path / "docs")
    expected = plain_rows(source, tmp_path / "plain.db", make_settings(), minilm)
    log = faults(tmp_path, monkeypatch, {"1/3": 1})

    # The settings passed in reach the steps: milvus_uri comes from them, not the params.
    settings = make_settings(milvus_uri=str(tmp_path / "argo.db"))
    run = run_local(NAME, {"source": str(source)}, settings)

    assert sorted(log.read_text().split()) == ["0/3", "1/3", "1/3", "2/3"]
    shards = {n["display_name"]: n for n in run["nodes"] if n["template"] == "ingest-shard"}
    assert sorted(shards) == ["ingest-shard(0:0/3)", "ingest-shard(1:1/3)", "ingest-shard(2:2/3)"]
    assert shards["ingest-shard(1:1/3)"]["attempts"] == 2
    assert read_rows(str(tmp_path / "argo.db")) == expected
    assert run["report"]["documents"]["new"] == 3 and run["report"]["chunks"] == len(expected)


def test_a_shard_failing_past_its_retries_fails_the_run_and_the_exit_handler_runs(
    local_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "docs"
    source.mkdir()
    write_document(source / "only.md", "only", topic("only"))
    log = faults(tmp_path, monkeypatch, {"0/1": 99})

    with pytest.raises(LocalRunError, match="ingest-shard") as caught:
        run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "argo.db")})
    assert "injected failure of shard 0/1" in str(caught.value)
    assert log.read_text().split() == ["0/1"] * 4  # the first attempt and three retries
    run = caught.value.run
    assert run is not None and run.phase == "Failed"
    assert run.node("report") == []
    (record,) = run.node("record-status")
    assert json.loads(record.result or "")["status"] == "Failed"


def test_parameters_are_checked_before_anything_runs(local_env: None, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'sauce'"):
        run_local(NAME, {"sauce": "x"})
    assert not (tmp_path / ".llmw").exists()
