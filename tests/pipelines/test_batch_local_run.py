"""A kfp.local run of batch-inference: two shards on the tiny LM merge to every id once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines.local_run import run_local
from tests.batch_runs import ROWS, check_merged, two_shard_job

NAME = "batch-inference"
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the default pipeline root, .llmw/kfp-local, lands here


def test_two_shards_on_kfp_local(local_env: None, tmp_path: Path, tiny_lm: Path) -> None:
    params, output = two_shard_job(tmp_path, tiny_lm)
    report = run_local(NAME, params)

    check_merged(output, report)
    assert sorted(p.name for p in output.parent.glob("*.shard-*.jsonl")) == [
        "results.jsonl.shard-0-of-2.jsonl",
        "results.jsonl.shard-1-of-2.jsonl",
    ]
    # The merge step of the branch that ran (transformers: the Else branch, merge-3) logged
    # Kubeflow Metrics and the Markdown summary.
    (run,) = (tmp_path / ".llmw" / "kfp-local").glob(f"{NAME}-*")
    (merge,) = [d for d in run.iterdir() if (d / "summary").exists()]
    summary = (merge / "summary").read_text()
    assert summary.startswith("# Batch inference") and f"| answered | {ROWS + 1} |" in summary
    outputs = json.loads((merge / "executor_output.json").read_text())
    metrics = outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["rows"] == ROWS + 1 and metrics["errors"] == 1
    # The output, as the Dataset the Kubeflow UI's lineage shows: where it is, and its counts.
    (results,) = outputs["artifacts"]["results"]["artifacts"]
    assert results["metadata"]["uri"] == str(output)
    assert results["metadata"]["rows"] == ROWS + 1 and results["metadata"]["format"] == "jsonl"
    assert json.loads((merge / "results").read_text()) == results["metadata"]
    assert not [d.name for d in run.iterdir() if "infer-shard-vllm" in d.name]
