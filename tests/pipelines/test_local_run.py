"""kfp.local runs of the whole pipeline leave the same rows in Milvus as ``llmw ingest``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pipelines.local_run import LocalRunError, run_local, settings_env
from tests import ingestion_runs as shared

NAME = "document-ingestion"
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMW_PARTITION_WORKERS", "0")
    monkeypatch.chdir(tmp_path)  # the default pipeline root, .llmw/kfp-local, lands here


def test_kfp_local_run_equals_plain_ingest(
    local_env: None, tmp_path: Path, make_settings: Any, minilm: Any
) -> None:
    source, expected = shared.plain_ingest(tmp_path, make_settings(), minilm)
    params = {"source": str(source), "milvus_uri": str(tmp_path / "kfp.db")}

    started = time.perf_counter()
    report = run_local(NAME, params)
    elapsed = time.perf_counter() - started
    print(f"kfp-local run: {elapsed:.1f} s")
    # A rerun writes nothing. (Before reading kfp.db here: Milvus Lite admits one process per
    # database file, and this process would hold it until exit.)
    shared.check_rerun(run_local(NAME, params))

    shared.check_same_as_plain(tmp_path / "kfp.db", tmp_path / "plain.db", expected)
    shared.check_first_report(report, expected)
    shared.check_listing_written_once(tmp_path)  # the rerun's listing is the same file
    # The report step's artifacts: Kubeflow Metrics and the Markdown summary.
    runs = sorted((tmp_path / ".llmw" / "kfp-local").glob("document-ingestion-*"))
    assert len(runs) == 2
    shared.check_summary((runs[0] / "report" / "summary").read_text(), expected)
    outputs = json.loads((runs[0] / "report" / "executor_output.json").read_text())
    metrics = outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["chunks"] == len(expected) and metrics["documents_new"] == 3
    # Each shard's report travelled as an artifact (its counts as metadata), not a parameter.
    shards = sorted(runs[0].glob("for-loop-1-iteration-*/ingest-shard"))
    assert shards
    for shard in shards:
        (stored,) = json.loads((shard / "executor_output.json").read_text())["artifacts"][
            "shard_report"
        ]["artifacts"]
        assert stored["metadata"]["shard"].endswith(f"/{len(shards)}")
        written = json.loads(Path(stored["uri"]).read_text())
        assert written["documents"]["seen"] == stored["metadata"]["documents_seen"]
        assert "parameterValues" not in json.loads((shard / "executor_output.json").read_text())


def test_shards_fan_out_and_a_failing_shard_is_retried(
    local_env: None,
    tmp_path: Path,
    make_settings: Any,
    minilm: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, expected = shared.plain_ingest(tmp_path, make_settings(), minilm)
    log = shared.inject_faults(tmp_path, monkeypatch, {"1/3": 1})

    # The settings passed in reach the components: milvus_uri comes from them, not the params.
    settings = shared.one_shard_per_document(make_settings(milvus_uri=str(tmp_path / "kfp.db")))
    report = run_local(NAME, {"source": str(source)}, settings)

    shared.check_retried(log, tmp_path / "kfp.db", expected, report)


def test_a_shard_failing_past_its_retries_fails_the_run(
    local_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = shared.one_document(tmp_path / "docs")
    log = shared.inject_faults(tmp_path, monkeypatch, {"0/1": 99})

    with pytest.raises(LocalRunError, match="ingest-shard") as caught:
        run_local(NAME, {"source": str(source), "milvus_uri": str(tmp_path / "kfp.db")})
    # The task's own one-line error (the last line of its log that says what was wrong).
    assert str(caught.value) == (
        "document-ingestion failed: ingest-shard: "
        "RuntimeError: injected failure of shard 0/1, attempt 4 (4 attempts)"
    )
    assert not caught.value.bad_input
    shared.check_gave_up(log)


def test_a_missing_source_is_bad_input_said_in_one_line(
    local_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(LocalRunError) as caught:
        run_local(NAME, {"source": str(missing)})
    # KFP's retry policy has no condition: the plan task is retried like any failure.
    assert str(caught.value) == (
        f"document-ingestion failed: plan: bad input: source {missing} does not exist (4 attempts)"
    )
    assert caught.value.bad_input
    # kfp.local's log (the task's traceback-free line included) went to stderr, uncoloured.
    out, err = capsys.readouterr()
    assert out == ""
    assert f"bad input: source {missing} does not exist" in err
    assert "Executing task 'plan'" in err and "\x1b[" not in err


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
