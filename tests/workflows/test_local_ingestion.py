"""argo-local runs of the rendered document-ingestion template leave the same rows in Milvus as
``llmw ingest`` (components.ingest.run.ingest) on the same input."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from components.registry import ParameterError
from tests import ingestion_runs as shared
from workflows.local_runner import LocalRunError, run_local

NAME = "document-ingestion"
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    monkeypatch.chdir(tmp_path)  # the default work dir, .llmw/argo-local, lands here


def test_argo_local_run_equals_plain_ingest(
    local_env: None, tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    source, expected = shared.plain_ingest(tmp_path, make_settings(), minilm)
    params = {"source": str(source), "milvus_uri": str(tmp_path / "argo.db")}

    started = time.perf_counter()
    run = run_local(NAME, params, run_name="document-ingestion-first")
    print(f"argo-local run: {time.perf_counter() - started:.1f} s")
    # A rerun writes nothing. (Before reading argo.db here: Milvus Lite admits one process per
    # database file, and this process would hold it until exit.)
    shared.check_rerun(run_local(NAME, params)["report"])

    shared.check_same_as_plain(tmp_path / "argo.db", tmp_path / "plain.db", expected)
    shared.check_first_report(run["report"], expected)
    assert run["status"] == "Succeeded" and run["workflow"] == "document-ingestion-first"
    nodes = {n["display_name"]: n for n in run["nodes"]}
    assert [n["phase"] for n in nodes.values()] == ["Succeeded"] * len(nodes)
    assert {"plan", "report"} <= set(nodes)
    (shard,) = [name for name in nodes if name.startswith("ingest-shard(0:")]
    assert '"shard":"0/1"' in shard  # the item: {"listing": ..., "shard": "0/1"}
    shared.check_listing_written_once(tmp_path)
    # The shard left its report under the run data and the run's uid; the step's result is
    # only its URI and counts, which the report step does not take.
    result = json.loads(nodes[shard]["outputs"]["result"])
    stored = Path(result["report"])
    assert stored.match(".llmw/runs/document-ingestion/reports/*/shard-0-of-1.json")
    assert json.loads(stored.read_text())["documents"] == result["documents"]
    # The report's Markdown summary artifact, at its S3 key under the workflow's name.
    summary = Path(nodes["report"]["outputs"]["artifacts"]["summary"])
    assert summary == (
        tmp_path
        / ".llmw/argo-local/artifacts/document-ingestion/document-ingestion-first/summary.md"
    )
    shared.check_summary(summary.read_text(), expected)


def test_shards_fan_out_and_a_failing_shard_is_retried(
    local_env: None,
    tmp_path: Path,
    make_settings: Any,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, expected = shared.plain_ingest(tmp_path, make_settings(), minilm)
    log = shared.inject_faults(tmp_path, monkeypatch, {"1/3": 1})

    # The settings passed in reach the steps: milvus_uri comes from them, not the params.
    settings = shared.one_shard_per_document(make_settings(milvus_uri=str(tmp_path / "argo.db")))
    run = run_local(NAME, {"source": str(source)}, settings)

    shared.check_retried(log, tmp_path / "argo.db", expected, run["report"])
    shards = {n["display_name"]: n for n in run["nodes"] if n["template"] == "ingest-shard"}
    # One shard per document, planned by the real planner (ingest_docs_per_shard=1).
    by_shard = {json.loads(name.split(":", 1)[1][:-1])["shard"]: n for name, n in shards.items()}
    assert sorted(by_shard) == ["0/3", "1/3", "2/3"]
    assert by_shard["1/3"]["attempts"] == 2


def test_a_shard_failing_past_its_retries_fails_the_run_and_the_exit_handler_runs(
    local_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = shared.one_document(tmp_path / "docs")
    log = shared.inject_faults(tmp_path, monkeypatch, {"0/1": 99})

    with pytest.raises(LocalRunError, match="ingest-shard") as caught:
        run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "argo.db")})
    # The step's own one-line error, not its traceback flattened.
    assert str(caught.value).endswith(
        ": RuntimeError: injected failure of shard 0/1, attempt 4 (exit code 1, 4 attempts)"
    )
    assert "Traceback" not in str(caught.value) and " | " not in str(caught.value)
    assert not caught.value.bad_input
    shared.check_gave_up(log)
    run = caught.value.run
    assert run is not None and run.phase == "Failed"
    assert run.node("report") == []


def test_parameters_are_checked_before_anything_runs(local_env: None, tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="unknown parameter 'sauce'"):
        run_local(NAME, {"sauce": "x"})
    assert not (tmp_path / ".llmw").exists()


def test_a_missing_source_is_bad_input_said_in_one_line_and_not_retried(
    local_env: None, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(LocalRunError) as caught:
        run_local(NAME, {"source": str(missing)}, run_name="document-ingestion-missing")
    assert str(caught.value) == (
        "document-ingestion (document-ingestion-missing) failed: plan: "
        f"bad input: source {missing} does not exist (exit code 2)"
    )
    assert caught.value.bad_input
    run = caught.value.run
    assert run is not None
    (plan,) = run.node("plan")
    assert (plan.attempts, plan.exit_code, plan.phase) == (1, 2, "Failed")
