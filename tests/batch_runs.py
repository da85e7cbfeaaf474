"""What both engines' local batch-inference runs share: a two-shard job and its checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.components.test_batch_inference import chat_line, read_output, write_batch

ROWS = 6


def two_shard_job(tmp_path: Path, tiny_lm: Path) -> tuple[dict[str, Any], Path]:
    """ROWS good rows and one with an unknown url, in two shards on the tiny LM."""
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
    return params, output


def check_merged(output: Path, report: dict[str, Any]) -> None:
    """Every id exactly once in the merged output, and the report counts it right."""
    results = read_output(output)
    ids = [r["custom_id"] for r in results]
    assert sorted(ids) == sorted([*(f"row-{i}" for i in range(ROWS)), "odd-url"])
    assert len(ids) == len(set(ids))
    assert report["rows"] == ROWS + 1 and report["errors"] == 1 and report["skipped"] == 0
    assert isinstance(report["rows"], int)
    usage = [r["response"]["body"]["usage"] for r in results if r["response"]]
    assert report["completion_tokens"] == sum(u["completion_tokens"] for u in usage) > 0
