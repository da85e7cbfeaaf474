"""An argo-local run of batch-inference: two shards on the tiny LM merge to every id once; the
other engines' fan-outs are Skipped by their ``when``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.batch_runs import ROWS, check_merged, two_shard_job
from workflows.local_runner import run_local

NAME = "batch-inference"
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the default work dir, .llmw/argo-local, lands here


def test_two_shards_on_argo_local(local_env: None, tmp_path: Path, tiny_lm: Path) -> None:
    params, output = two_shard_job(tmp_path, tiny_lm)
    run = run_local(NAME, params, run_name="batch-inference-first")

    report = run["report"]
    check_merged(output, report)
    phases = {n["display_name"]: n["phase"] for n in run["nodes"] if n["type"] != "Steps"}
    assert phases == {
        "plan": "Succeeded",
        "infer-shard-vllm(0:0/2)": "Skipped",
        "infer-shard-vllm(1:1/2)": "Skipped",
        "infer-shard-openai(0:0/2)": "Skipped",
        "infer-shard-openai(1:1/2)": "Skipped",
        "infer-shard-transformers(0:0/2)": "Succeeded",
        "infer-shard-transformers(1:1/2)": "Succeeded",
        "merge": "Succeeded",
    }
    summary = (
        tmp_path / ".llmw/argo-local/artifacts/batch-inference/batch-inference-first/summary.md"
    )
    text = summary.read_text()
    assert text.startswith("# Batch inference") and f"| answered | {ROWS + 1} |" in text
