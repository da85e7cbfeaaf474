"""A kfp.local run of batch-inference: two shards on the tiny LM merge to every id once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipelines.local_run import run_local
from tests.components.test_batch_inference import chat_line, read_output, write_batch

NAME = "batch-inference"
ROWS = 6
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the default pipeline root, .llmw/kfp-local, lands here


def test_two_shards_on_kfp_local(local_env: None, tmp_path: Path, tiny_lm: Path) -> None:
    odd = chat_line("odd-url", "x", url="/v1/images/generations")
    source = write_batch(tmp_path / "in.jsonl", ROWS, [odd])
    output = tmp_path / "out" / "results.jsonl"
    params: dict[str, Any] = {
        "input": str(source),
        "output": str(output),
        "model": str(tiny_lm),
        "engine": "transformers",
        "shards": 2,
        "max_tokens": 4,
        "batch_size": 4,
    }
    report = run_local(NAME, params)

    results = read_output(output)
    ids = [r["custom_id"] for r in results]
    assert sorted(ids) == sorted([*(f"row-{i}" for i in range(ROWS)), "odd-url"])
    assert len(ids) == len(set(ids))
    assert sorted(p.name for p in output.parent.glob("*.shard-*.jsonl")) == [
        "results.jsonl.shard-0-of-2.jsonl",
        "results.jsonl.shard-1-of-2.jsonl",
    ]
    assert report["rows"] == ROWS + 1 and report["errors"] == 1 and report["skipped"] == 0
    assert isinstance(report["rows"], int)
    usage = [r["response"]["body"]["usage"] for r in results if r["response"]]
    assert report["completion_tokens"] == sum(u["completion_tokens"] for u in usage) > 0
    # The merge step of the branch that ran (transformers: the Else branch, merge-3) logged
    # Kubeflow Metrics and the Markdown summary.
    (run,) = (tmp_path / ".llmw" / "kfp-local").glob(f"{NAME}-*")
    (merge,) = [d for d in run.iterdir() if (d / "summary").exists()]
    summary = (merge / "summary").read_text()
    assert summary.startswith("# Batch inference") and f"| answered | {ROWS + 1} |" in summary
    outputs = json.loads((merge / "executor_output.json").read_text())
    metrics = outputs["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert metrics["rows"] == ROWS + 1 and metrics["errors"] == 1
    assert not [d.name for d in run.iterdir() if "infer-shard-vllm" in d.name]
