"""`llmw infer`: summary JSON, exit codes, refusal before anything runs, no file destroyed,
every failure a message (never a traceback), reruns that retry what can succeed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testing.openai_server import OpenAIServer
from tests.components.test_batch_inference import chat_line, read_output, write_batch
from tests.conftest import free_port
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
    assert again.returncode == 3, "the malformed line's error is still in the output"
    assert (json.loads(again.stdout)["skipped"], json.loads(again.stdout)["errors"]) == (5, 1)


def test_a_structural_problem_is_refused_before_running(tmp_path: Path) -> None:
    dataset = tmp_path / "ds.csv"
    dataset.write_text("id,topic\n1,milvus\n")
    out = tmp_path / "o.jsonl"
    common = ["infer", str(dataset), "--output", str(out), "--model", "m"]
    result = llmw(*common, "--template", "{subject}", "--id-column", "id")
    assert result.returncode == 2
    assert "no column 'subject'" in result.stderr
    no_template = llmw(*common, "--id-column", "id")
    assert no_template.returncode == 2 and "--template" in no_template.stderr
    assert not out.exists(), "a refused run leaves no output file"


def openai_env(server: OpenAIServer, key: str = "k") -> dict[str, str]:
    return {"LLMW_LLM_URL": server.url, "LLMW_LLM_API_KEY": key}


def infer_openai(source: Path, out: Path | str, env: dict[str, str], *extra: str) -> Any:
    args = ["infer", str(source), "--output", str(out), "--engine", "openai"]
    return llmw(*args, "--model", "served", "--json", *extra, env=env)


def test_never_destroys_a_file(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)
    before = source.read_text()
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    with OpenAIServer(api_key="k") as server:
        env = openai_env(server)
        same = infer_openai(source, source, env)
        assert same.returncode == 2 and "is the input" in same.stderr, same.stderr
        assert infer_openai(source, source, env, "--overwrite").returncode == 2
        assert source.read_text() == before
        foreign = infer_openai(source, notes, env)
        assert foreign.returncode == 2 and "--overwrite" in foreign.stderr
        assert notes.read_text() == "my notes\n"
        replaced = infer_openai(source, notes, env, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(r["custom_id"] for r in read_output(notes)) == ["row-0", "row-1"]


def test_every_failure_is_a_message(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    cases = {
        ("--model", "/nonexistent"): "/nonexistent",
        ("--output", str(tmp_path)): "is a folder",
        ("--output", ""): "--output is empty",
        ("--engine", "nope"): "'nope' is not one of",
    }
    for (option, value), expected in cases.items():
        values = {"--output": str(out), "--model": "m", option: value}
        args = [arg for pair in values.items() for arg in pair]
        result = llmw("infer", str(source), *args)
        assert result.returncode == 2, (option, result.stderr)
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not out.exists()
    env = {"LLMW_LLM_URL": f"http://127.0.0.1:{free_port()}/v1"}
    unreachable = llmw(
        "infer", str(source), "--output", str(out), "--model", "m", "--engine", "openai", env=env
    )
    assert unreachable.returncode == 1, unreachable.stderr
    assert unreachable.stderr.startswith("error: cannot reach ")
    assert len(unreachable.stderr.strip().splitlines()) == 1 and "127.0.0.1" in unreachable.stderr
    assert not out.exists()


def test_a_rerun_retries_rows_that_failed_and_replaces_their_errors(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 3, [chat_line("huge", "x" * 3000)])
    out = tmp_path / "out.jsonl"
    with OpenAIServer(api_key="k") as server:
        wrong = infer_openai(source, out, openai_env(server, "wrong"))
        assert wrong.returncode == 3 and json.loads(wrong.stdout)["errors"] == 4
        codes = {r["error"]["code"] for r in read_output(out)}
        assert codes == {"request_failed"}

        right = infer_openai(source, out, openai_env(server))
        assert right.returncode == 3, "huge is too long for the model"
        assert (json.loads(right.stdout)["rows"], json.loads(right.stdout)["errors"]) == (4, 1)
        server.requests.clear()
        last = infer_openai(source, out, openai_env(server))
    assert last.returncode == 3 and json.loads(last.stdout)["skipped"] == 4
    assert server.requests == [], "a context-length error is not retried"
    results = read_output(out)
    assert sorted(r["custom_id"] for r in results) == ["huge", "row-0", "row-1", "row-2"]
    assert [r["error"]["code"] for r in results if r["error"]] == ["context_length_exceeded"]


def test_engine_choices_are_shown() -> None:
    result = llmw("infer", "--help", env={"COLUMNS": "200"})
    assert "<transformers|openai|vllm>" in result.stdout, result.stdout


def test_engine_choices_are_the_models() -> None:
    from typing import get_args

    from components.inference.models import BatchOptions
    from llmw.infer_command import EngineName

    assert get_args(EngineName) == get_args(BatchOptions.model_fields["engine"].annotation)
