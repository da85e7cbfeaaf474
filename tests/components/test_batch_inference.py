"""Batch inference: bad rows, datasets, resume after a kill, shards, S3, the openai engine."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from components.inference.batch import merge_outputs, run_batch
from components.inference.batch_io import InputRefusedError
from components.inference.models import BatchParams, BatchResult
from components.inference.results_file import ResultWriter
from testing.openai_server import OpenAIServer
from tests.conftest import REPO


def chat_line(custom_id: str, text: str, **extra: Any) -> str:
    body = {"model": "tiny", "messages": [{"role": "user", "content": text}], "max_tokens": 4}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
        | extra
    )


def write_batch(path: Path, count: int, extra_lines: list[str] | None = None) -> Path:
    lines = [chat_line(f"row-{i}", f"question number {i}") for i in range(count)]
    path.write_text("\n".join(lines + (extra_lines or [])) + "\n")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def params(tmp_path: Path, source: Path, model: str, **extra: Any) -> BatchParams:
    values: dict[str, Any] = {
        "input": str(source),
        "output": str(tmp_path / "out.jsonl"),
        "model": model,
        "batch_size": 4,
    }
    return BatchParams(**(values | extra))


def test_bad_rows_get_errors_and_lose_nothing(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(
        tmp_path / "in.jsonl",
        6,
        [
            "{not json",
            json.dumps({"method": "POST", "url": "/v1/chat/completions", "body": {}}),
            chat_line("row-1", "a duplicate id"),
            chat_line("odd-url", "x", url="/v1/images/generations"),
            chat_line("too-long", "word " * 400),
        ],
    )
    report = run_batch(params(tmp_path, source, str(tiny_lm)))

    results = read_output(tmp_path / "out.jsonl")
    by_id = {r["custom_id"]: r for r in results if r["custom_id"]}
    assert all(by_id[f"row-{i}"]["response"]["status_code"] == 200 for i in range(6))
    assert by_id["row-0"]["response"]["body"]["usage"]["completion_tokens"] >= 1
    assert by_id["odd-url"]["error"]["code"] == "unknown_url"
    assert by_id["too-long"]["error"]["code"] == "context_length_exceeded"
    codes = Counter(r["error"]["code"] for r in results if r["error"])
    assert codes == {
        "malformed_line": 1,
        "missing_custom_id": 1,
        "duplicate_custom_id": 1,
        "unknown_url": 1,
        "context_length_exceeded": 1,
    }
    assert (
        "line 9"
        in next(r for r in results if r["error"] and "duplicate" in r["error"]["code"])["error"][
            "message"
        ]
    )
    assert len({r["id"] for r in results}) == len(results) == 11
    assert (report.rows, report.errors) == (11, 5)

    again = run_batch(params(tmp_path, source, str(tiny_lm)))
    assert (again.rows, again.skipped) == (0, 11)
    assert len(read_output(tmp_path / "out.jsonl")) == 11


def test_dataset_with_template_csv_jsonl_parquet(tmp_path: Path, tiny_lm: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{"id": f"q{i}", "topic": t} for i, t in enumerate(["milvus", "nats", "argo"])]
    csv_path = tmp_path / "ds.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "topic"])
        writer.writeheader()
        writer.writerows(records)
    jsonl_path = tmp_path / "ds.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    parquet_path = tmp_path / "ds.parquet"
    pq.write_table(pa.Table.from_pylist(records), parquet_path)

    for path in (csv_path, jsonl_path, parquet_path):
        out = tmp_path / f"{path.suffix[1:]}.jsonl"
        run_batch(
            params(
                tmp_path,
                path,
                str(tiny_lm),
                output=str(out),
                template="Explain {topic}.",
                id_column="id",
            )
        )
        assert sorted(r["custom_id"] for r in read_output(out)) == ["q0", "q1", "q2"]

    with pytest.raises(InputRefusedError, match=r"the header: the dataset has no column 'qid'"):
        run_batch(params(tmp_path, csv_path, str(tiny_lm), template="{topic}", id_column="qid"))
    with pytest.raises(InputRefusedError, match=r"line 1: the dataset has no column 'subject'"):
        run_batch(params(tmp_path, jsonl_path, str(tiny_lm), template="{subject}", id_column="id"))


RUNNER = """
import sys
from components.inference.batch import run_batch
from components.inference.models import BatchParams

if __name__ == "__main__":
    run_batch(BatchParams(input=sys.argv[1], output=sys.argv[2], model=sys.argv[3], batch_size=1),
              progress=lambda report: print("row", flush=True))
"""


def run_and_kill(code: str, source: Path, out: Path, model: Path, after_rows: int) -> None:
    """Run ``code`` (a runner) in a process of its own and SIGKILL it after ``after_rows``."""
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(source), str(out), str(model)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    for count, _ in enumerate(process.stdout, start=1):
        if count == after_rows:
            os.killpg(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def test_a_run_killed_mid_way_then_rerun_has_every_id_once(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 40)
    out = tmp_path / "out.jsonl"
    run_and_kill(RUNNER, source, out, tiny_lm, after_rows=25)
    with out.open("a") as handle:  # as if the kill tore the last line
        handle.write('{"id": "batch_req_torn", "cust')
    written = len(out.read_text().splitlines()) - 1
    assert 0 < written < 40

    report = run_batch(params(tmp_path, source, str(tiny_lm)))
    ids = [r["custom_id"] for r in read_output(out)]
    assert sorted(ids) == sorted(f"row-{i}" for i in range(40))
    assert report.skipped == written


def test_shard_outputs_merge_to_exactly_the_unsharded_set(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 20, ["{broken"])
    parts = []
    for index in range(3):
        part = tmp_path / f"part-{index}.jsonl"
        run_batch(params(tmp_path, source, str(tiny_lm), output=str(part), shard=f"{index}/3"))
        parts.append(part)
    assert all(p.read_text() for p in parts), "every shard got rows"
    merged = tmp_path / "merged.jsonl"
    assert merge_outputs(parts, merged) == 21
    run_batch(params(tmp_path, source, str(tiny_lm), output=str(tmp_path / "whole.jsonl")))
    whole = read_output(tmp_path / "whole.jsonl")
    assert sorted(r["id"] for r in read_output(merged)) == sorted(r["id"] for r in whole)


def test_s3_input_and_output(s3_settings: Any, tmp_path: Path, tiny_lm: Path) -> None:
    from components.storage.s3 import minio_client

    client = minio_client(s3_settings)
    client.make_bucket("batches")
    data = write_batch(tmp_path / "in.jsonl", 5).read_bytes()
    client.put_object("batches", "in/requests.jsonl", io.BytesIO(data), len(data))
    job = BatchParams(
        input="s3://batches/in/requests.jsonl",
        output="s3://batches/out/r.jsonl",
        model=str(tiny_lm),
    )
    assert run_batch(job, s3_settings).rows == 5
    uploaded = client.get_object("batches", "out/r.jsonl").read().decode().splitlines()
    assert sorted(json.loads(x)["custom_id"] for x in uploaded) == [f"row-{i}" for i in range(5)]
    rerun = run_batch(job, s3_settings)
    assert (rerun.rows, rerun.skipped) == (0, 5)


def test_openai_engine_contract_retries_and_concurrency(tmp_path: Path, make_settings: Any) -> None:
    source = write_batch(tmp_path / "in.jsonl", 30, [chat_line("huge", "x" * 3000)])
    with OpenAIServer(api_key="k", delay_s=0.05) as server:
        server.failures.extend([429, 500, 503])
        settings = make_settings(llm_url=server.url, llm_api_key="k")
        report = run_batch(
            params(tmp_path, source, "served-model", engine="openai", concurrency=4), settings
        )
    results = read_output(tmp_path / "out.jsonl")
    assert len(results) == 31 and report.rows == 31
    huge = next(r for r in results if r["custom_id"] == "huge")
    assert huge["error"]["code"] == "context_length_exceeded"
    assert all(r["response"]["status_code"] == 200 for r in results if r["custom_id"] != "huge")
    assert server.max_in_flight <= 4
    assert not server.contract_violations


def test_result_writer_cuts_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    good = BatchResult(id="a", custom_id="a").model_dump_json()
    path.write_text(good + "\n" + '{"id": "b", "cus')
    writer = ResultWriter(path)
    assert writer.done == {"a"}
    writer.write([BatchResult(id="c", custom_id="c")])
    writer.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "c"]
