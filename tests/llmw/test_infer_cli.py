"""`llmw infer`: summary JSON, exit codes, refusal before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.components.test_batch_inference import chat_line, write_batch
from tests.llmw.test_ingest_cli import llmw


def test_infer_writes_results_and_reports_row_errors(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 3, ["{broken", chat_line("ok-2", "hi")])
    out = tmp_path / "out.jsonl"
    args = ["infer", str(source), "--output", str(out), "--model", str(tiny_lm), "--json"]
    first = llmw(*args)
    assert first.returncode == 3, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["rows"], summary["errors"], summary["skipped"]) == (5, 1, 0)
    assert summary["completion_tokens"] > 0
    assert len(out.read_text().splitlines()) == 5

    again = llmw(*args)
    assert json.loads(again.stdout)["skipped"] == 5


def test_a_structural_problem_is_refused_before_running(tmp_path: Path) -> None:
    dataset = tmp_path / "ds.csv"
    dataset.write_text("id,topic\n1,milvus\n")
    result = llmw(
        "infer",
        str(dataset),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--model",
        "m",
        "--template",
        "{subject}",
        "--id-column",
        "id",
    )
    assert result.returncode == 2
    assert "no column 'subject'" in result.stderr
    assert not (tmp_path / "o.jsonl").read_text(), "nothing ran"
