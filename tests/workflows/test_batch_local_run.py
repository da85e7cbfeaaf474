"""An argo-local run of batch-inference: two shards on the tiny LM merge to every id once; the
other engines' fan-outs are Skipped by their ``when``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.components.test_batch_inference import chat_line, read_output, write_batch
from workflows.local_runner import run_local

NAME = "batch-inference"
ROWS = 6
pytestmark = pytest.mark.slow


@pytest.fixture
def local_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # the default work dir, .llmw/argo-local, lands here


def test_two_shards_on_argo_local(local_env: None, tmp_path: Path, tiny_lm: Path) -> None:
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
    run = run_local(NAME, params, run_name="batch-inference-first")

    results = read_output(output)
    ids = [r["custom_id"] for r in results]
    assert sorted(ids) == sorted([*(f"row-{i}" for i in range(ROWS)), "odd-url"])
    assert len(ids) == len(set(ids))
    report = run["report"]
    assert report["rows"] == ROWS + 1 and report["errors"] == 1 and report["skipped"] == 0
    usage = [r["response"]["body"]["usage"] for r in results if r["response"]]
    assert report["completion_tokens"] == sum(u["completion_tokens"] for u in usage) > 0
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
        "record-status": "Succeeded",
    }
    summary = (
        tmp_path / ".llmw/argo-local/artifacts/batch-inference/batch-inference-first/summary.md"
    )
    text = summary.read_text()
    assert text.startswith("# Batch inference") and f"| answered | {ROWS + 1} |" in text
