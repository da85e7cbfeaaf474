"""Batch inference input and models: a dataset needs a template, a custom_id must be a string,
every row runs the model asked for and reports it, an unreachable server is one clear failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.inference.batch import run_batch
from components.inference.batch_io import EngineUnavailableError, InputRefusedError
from components.inference.engines.openai_engine import OpenAIEngine
from testing.openai_server import OpenAIServer
from tests.components.test_batch_inference import chat_line, params, read_output, write_batch
from tests.conftest import free_port


def test_a_dataset_without_a_template_is_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{"id": "q0", "topic": "milvus"}, {"id": "q1", "topic": "nats"}]
    csv_path = tmp_path / "ds.csv"
    csv_path.write_text("id,topic\nq0,milvus\nq1,nats\n")
    jsonl_path = tmp_path / "ds.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    parquet_path = tmp_path / "ds.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet_path)
    out = tmp_path / "out.jsonl"
    for path in (csv_path, jsonl_path, parquet_path):
        for id_column in ("id", None):
            job = params(tmp_path, path, "m", id_column=id_column)
            with pytest.raises(InputRefusedError, match="--template"):
                run_batch(job)
            assert not out.exists()


def test_a_batch_file_with_a_bad_first_line_still_runs_its_rows(
    tmp_path: Path, tiny_lm: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("{not json\n" + chat_line("a", "hello") + "\n")
    report = run_batch(params(tmp_path, source, str(tiny_lm)))
    assert (report.rows, report.errors) == (2, 1)


def test_a_custom_id_that_is_not_a_string_is_named(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 1, [chat_line("x", "hi").replace('"x"', "5")])
    run_batch(params(tmp_path, source, str(tiny_lm)))
    error = next(r["error"] for r in read_output(tmp_path / "out.jsonl") if r["error"])
    assert error["code"] == "invalid_custom_id"
    assert "custom_id must be a string" in error["message"] and "5 (int)" in error["message"]


def test_generation_reports_the_model_that_ran(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)  # bodies name the model "tiny"
    run_batch(params(tmp_path, source, str(tiny_lm)))
    models = {r["response"]["body"]["model"] for r in read_output(tmp_path / "out.jsonl")}
    assert models == {str(tiny_lm)}


def test_embedding_rows_use_the_model_asked_for(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    body = {"model": "text-embedding-3-small", "input": ["a milvus collection", "nats"]}
    line = {"custom_id": "e1", "method": "POST", "url": "/v1/embeddings", "body": body}
    source.write_text(json.dumps(line) + "\n")
    report = run_batch(params(tmp_path, source, "all-MiniLM-L6-v2"))
    assert report.errors == 0
    (result,) = read_output(tmp_path / "out.jsonl")
    answer = result["response"]["body"]
    assert answer["model"] == "all-MiniLM-L6-v2"
    assert [len(d["embedding"]) for d in answer["data"]] == [384, 384]


def test_the_openai_engine_sends_the_model_asked_for(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 3)
    with OpenAIServer() as server:
        engine = OpenAIEngine(server.url, model="served", concurrency=2)
        run_batch(params(tmp_path, source, "served", engine="openai"), engine=engine)
    assert {r["model"] for r in server.requests} == {"served"}
    models = {r["response"]["body"]["model"] for r in read_output(tmp_path / "out.jsonl")}
    assert models == {"served"}


def test_an_unreachable_server_fails_the_run_before_any_row(
    tmp_path: Path, make_settings: object
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 3)
    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = make_settings(llm_url=url)  # type: ignore[operator]
    with pytest.raises(EngineUnavailableError, match=r"cannot reach .*127\.0\.0\.1"):
        run_batch(params(tmp_path, source, "served", engine="openai"), settings)
    assert not (tmp_path / "out.jsonl").exists()
