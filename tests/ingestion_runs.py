"""What both engines' local document-ingestion runs share: the corpus and the rows ``llmw
ingest`` leaves from it, injected shard failures, and the checks of a run's results."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from components.ingest.models import IngestParams
from components.ingest.run import ingest
from testing.documents import topic, write_document
from tests.milvus_rows import read_manifest, read_rows

DOCUMENTS = 3

# Loaded by every Python subprocess that has this folder on PYTHONPATH (the kfp.local component
# runs, the argo-local steps): makes chosen shards fail, recording each attempt. (One shard per
# document comes from the settings: ingest_docs_per_shard=1, the real planner.)
FAULTS = """
import json, os

_config = json.loads(os.environ["TEST_INGEST_FAULTS"])

import components.ingest.steps as steps

_real = steps.ingest_shard


def ingest_shard(params, shard, listing, settings=None):
    log = _config["log"]
    with open(log, "a") as out:
        out.write(shard + "\\n")
    with open(log) as seen:
        attempts = [line.strip() for line in seen].count(shard)
    if attempts <= _config["failures"].get(shard, 0):
        raise RuntimeError(f"injected failure of shard {shard}, attempt {attempts}")
    return _real(params, shard, listing, settings)


steps.ingest_shard = ingest_shard
"""


def corpus(folder: Path) -> Path:
    """DOCUMENTS documents, one of each text type, long enough to chunk."""
    for i, name in enumerate(["khelben", "drizzt", "danilo"]):
        suffix = [".md", ".txt", ".html"][i]
        write_document(folder / f"{name}{suffix}", name, topic(name, words=120))
    return folder


def one_document(folder: Path) -> Path:
    """A folder holding a single document: one shard."""
    folder.mkdir()
    write_document(folder / "only.md", "only", topic("only"))
    return folder


def plain_ingest(tmp_path: Path, settings: Any, minilm: Any) -> tuple[Path, list[dict[str, Any]]]:
    """The corpus (in ``docs``) and the rows ``llmw ingest`` (components.ingest.run.ingest) leaves
    from it in Milvus (``plain.db``), both under ``tmp_path``."""
    source = corpus(tmp_path / "docs")
    uri = str(tmp_path / "plain.db")
    ingest(IngestParams(source=str(source), milvus_uri=uri), settings, embedder=minilm)
    return source, read_rows(uri)


def inject_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: dict[str, int]
) -> Path:
    """Shard ``s`` fails its first ``failures[s]`` attempts. Returns the log of attempts (one
    shard a line)."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(textwrap.dedent(FAULTS))
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("PYTHONPATH", str(hooks))
    monkeypatch.setenv("TEST_INGEST_FAULTS", json.dumps({"log": str(log), "failures": failures}))
    return log


def one_shard_per_document(settings: Any) -> Any:
    """``settings`` cut into one shard per document, by the real planner."""
    return settings.model_copy(update={"ingest_docs_per_shard": 1})


def check_listing_written_once(tmp_path: Path) -> None:
    """The plan step wrote one listing of the corpus under the run data folder (the default,
    .llmw/runs in the run's working folder), named by its content hash; each shard and the
    report read it."""
    (listing,) = (tmp_path / ".llmw" / "runs").glob("document-ingestion/listings/*.json")
    documents = json.loads(listing.read_text())["documents"]
    assert sorted(d["name"] for d in documents) == ["danilo.html", "drizzt.txt", "khelben.md"]


def check_rerun(report: dict[str, Any]) -> None:
    """A rerun on the same input writes nothing."""
    assert report["documents"]["unchanged"] == DOCUMENTS and report["chunks"] == 0


def check_same_as_plain(uri: Path, plain_uri: Path, expected: list[dict[str, Any]]) -> None:
    """The run left the rows and the manifest plain ingest left."""
    assert read_rows(str(uri)) == expected
    assert read_manifest(str(uri)) == read_manifest(str(plain_uri))


def check_first_report(report: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    """The first run's report: every document new, one chunk per row."""
    assert report["documents"] == {
        "seen": 3, "new": 3, "changed": 0, "unchanged": 0, "deleted": 0, "failed": 0, "skipped": 0
    }  # fmt: skip
    assert report["chunks"] == len(expected)
    assert isinstance(report["chunks"], int)


def check_summary(text: str, expected: list[dict[str, Any]]) -> None:
    """The report step's Markdown summary counts the chunks."""
    assert text.startswith("# Document ingestion") and f"**{len(expected)}** chunks" in text


def check_retried(
    log: Path, uri: Path, expected: list[dict[str, Any]], report: dict[str, Any]
) -> None:
    """Shard 1/3, failing once, ran twice; the rows and the report are still complete."""
    assert sorted(log.read_text().split()) == ["0/3", "1/3", "1/3", "2/3"]
    assert read_rows(str(uri)) == expected
    assert report["documents"]["new"] == DOCUMENTS and report["chunks"] == len(expected)


def check_gave_up(log: Path) -> None:
    """The one shard, always failing, ran its first attempt and three retries."""
    assert log.read_text().split() == ["0/1"] * 4
