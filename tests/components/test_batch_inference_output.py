"""Batch inference never destroys a file: the output is the input or not a results file, it is
refused and left as it was (local, s3:// and the shard steps); ``overwrite`` replaces it; a
refused run creates nothing; a rerun retries the rows whose error can succeed, and only those."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from components.inference.batch import run_batch
from components.inference.batch_io import InputRefusedError, OutputRefusedError, result_id
from components.inference.engines.openai_engine import OpenAIEngine
from components.inference.models import BatchResult, RowError
from components.inference.steps import merge_shards, plan_shards, run_shard, shard_uri
from testing.openai_server import OpenAIServer
from tests.components.test_batch_inference import (
    RUNNER,
    chat_line,
    params,
    read_output,
    run_and_kill,
    write_batch,
)

FOREIGN = {
    "text": "my notes\nsecond line\n",
    "unrelated jsonl": '{"name": "a", "score": 1}\n{"name": "b", "score": 2}\n',
    "text, no newline": "hello",
    "blank lines": "\n\n",
}


def error_row(custom_id: str, code: str) -> str:
    row = BatchResult(
        id=result_id(custom_id), custom_id=custom_id, error=RowError(code=code, message="x")
    )
    return row.model_dump_json() + "\n"


def test_the_input_itself_is_refused_and_left_untouched(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)
    before = source.read_bytes()
    link = tmp_path / "link.jsonl"
    link.symlink_to(source)
    hard = tmp_path / "hard.jsonl"
    os.link(source, hard)
    for output in (source, link, hard):
        for overwrite in (False, True):
            job = params(tmp_path, source, "no-model", output=str(output), overwrite=overwrite)
            with pytest.raises(OutputRefusedError, match="is the input"):
                run_batch(job)
    assert source.read_bytes() == before


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_file_that_is_not_results_is_refused(tmp_path: Path, kind: str) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    out.write_text(FOREIGN[kind])
    with pytest.raises(OutputRefusedError, match=r"line 1 is not a result row.*overwrite"):
        run_batch(params(tmp_path, source, "no-model"))
    assert out.read_text() == FOREIGN[kind]


def test_a_mixed_file_keeps_its_unrelated_line(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    mixed = error_row("row-0", "malformed_line") + '{"note": "mine"}\n' + error_row("x", "y")
    out.write_text(mixed)
    with pytest.raises(OutputRefusedError, match="line 2 is not a result row"):
        run_batch(params(tmp_path, source, "no-model"))
    assert out.read_text() == mixed


def test_overwrite_replaces_a_file_that_is_not_results(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    out.write_text(FOREIGN["text"])
    report = run_batch(params(tmp_path, source, str(tiny_lm), overwrite=True))
    assert report.rows == 3
    assert sorted(r["custom_id"] for r in read_output(out)) == ["row-0", "row-1", "row-2"]


def test_a_folder_or_empty_output_is_refused(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 1)
    with pytest.raises(OutputRefusedError, match="is a folder"):
        run_batch(params(tmp_path, source, "no-model", output=str(tmp_path)))
    with pytest.raises(OutputRefusedError, match="is empty"):
        run_batch(params(tmp_path, source, "no-model", output=""))
    with pytest.raises(OutputRefusedError, match="is not a folder"):
        run_batch(params(tmp_path, source, "no-model", output=str(source / "out.jsonl")))


def test_a_refused_run_creates_no_output(tmp_path: Path) -> None:
    dataset = tmp_path / "ds.csv"
    dataset.write_text("id,topic\n1,milvus\n")
    out = tmp_path / "new" / "out.jsonl"
    job = params(tmp_path, dataset, "m", output=str(out), template="{subject}", id_column="id")
    with pytest.raises(InputRefusedError):
        run_batch(job)
    assert not out.parent.exists()
    source = write_batch(tmp_path / "in.jsonl", 2, ["{broken"])
    with pytest.raises(InputRefusedError, match="model"):
        run_batch(params(tmp_path, source, str(tmp_path / "no-such-model"), output=str(out)))
    assert not out.parent.exists()


def test_s3_output_is_protected(s3_settings: Any, tmp_path: Path) -> None:
    from components.storage.s3 import minio_client

    client = minio_client(s3_settings)
    client.make_bucket("guarded")
    source = write_batch(tmp_path / "in.jsonl", 2)
    client.fput_object("guarded", "in.jsonl", str(source))
    client.put_object("guarded", "notes.txt", io.BytesIO(b"mine\n"), 5)
    job = params(tmp_path, source, "m", input="s3://guarded/in.jsonl")
    with pytest.raises(OutputRefusedError, match="is the input"):
        run_batch(job.model_copy(update={"output": "s3://guarded/in.jsonl"}), s3_settings)
    with pytest.raises(OutputRefusedError, match="not a result row"):
        run_batch(job.model_copy(update={"output": "s3://guarded/notes.txt"}), s3_settings)
    assert client.get_object("guarded", "notes.txt").read() == b"mine\n"
    assert client.get_object("guarded", "in.jsonl").read() == source.read_bytes()


def test_the_shard_steps_are_protected(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 4)
    out = tmp_path / "results.jsonl"
    job = {"input": str(source), "output": str(out), "model": "m", "shards": 2}
    out.write_text(FOREIGN["text"])
    with pytest.raises(OutputRefusedError, match="not a result row"):
        plan_shards(job)
    with pytest.raises(OutputRefusedError, match="not a result row"):
        merge_shards(job, ["0/1"], [{}])
    assert out.read_text() == FOREIGN["text"]
    with pytest.raises(OutputRefusedError, match="is the input"):
        plan_shards(job | {"output": str(source)})
    out.unlink()
    shard_file = Path(shard_uri(str(out), "0/2"))
    shard_file.write_text(FOREIGN["unrelated jsonl"])
    with pytest.raises(OutputRefusedError, match="not a result row"):
        run_shard(job, "0/2")
    assert shard_file.read_text() == FOREIGN["unrelated jsonl"]


def openai_job(tmp_path: Path, source: Path, server: OpenAIServer, **extra: Any) -> Any:
    engine = OpenAIEngine(server.url, concurrency=1, max_retries=1, backoff_s=0.0, **extra)
    return params(tmp_path, source, "served", engine="openai", concurrency=1), engine


def test_a_rerun_retries_what_can_succeed_and_keeps_the_rest(tmp_path: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", 4, ["{broken", chat_line("huge", "x" * 3000)])
    out = tmp_path / "out.jsonl"
    with OpenAIServer(api_key="k") as server:
        server.failures.extend([500, 500])  # the first row's two tries
        job, engine = openai_job(tmp_path, source, server, api_key="k")
        first = run_batch(job, engine=engine)
        codes = {r["custom_id"]: (r["error"] or {}).get("code") for r in read_output(out)}
        assert codes["row-0"] == "retries_exhausted"
        assert codes["huge"] == "context_length_exceeded"
        assert (first.rows, first.errors) == (6, 3)

        _, wrong_key = openai_job(tmp_path, source, server, api_key="wrong")
        second = run_batch(job, engine=wrong_key)  # row-0 fails again, differently
        assert (second.rows, second.skipped, second.errors) == (1, 5, 3)
        assert [r["error"]["code"] for r in read_output(out) if r["custom_id"] == "row-0"] == [
            "request_failed"
        ]

        server.requests.clear()
        third = run_batch(job, engine=engine)
        assert [r["messages"][0]["content"] for r in server.requests] == ["question number 0"]
    results = read_output(out)
    assert len(results) == len({r["id"] for r in results}) == 6
    row0 = next(r for r in results if r["custom_id"] == "row-0")
    assert row0["error"] is None and row0["response"]["status_code"] == 200
    assert (third.rows, third.skipped, third.errors) == (1, 5, 2)  # broken and huge remain
    again = run_batch(job, engine=engine)
    assert (again.rows, again.skipped, again.errors) == (0, 6, 2)
    assert read_output(out) == results


def test_a_rerun_killed_while_retrying_ends_with_every_id_once(
    tmp_path: Path, tiny_lm: Path
) -> None:
    source = write_batch(tmp_path / "in.jsonl", 40)
    out = tmp_path / "out.jsonl"
    out.write_text("".join(error_row(f"row-{i}", "request_failed") for i in range(40)))
    flushing = "import components.inference.batch as b\nb.WRITE_EVERY = 1\n" + RUNNER
    run_and_kill(flushing, source, out, tiny_lm, after_rows=15)
    lines = out.read_text().splitlines()
    killed = [json.loads(line) for line in lines[:-1]]  # the last may be torn by the kill
    assert len(killed) >= 40 + 10, "retried rows were appended before the kill"
    assert {r["custom_id"] for r in killed[:40]} == {f"row-{i}" for i in range(40)}

    report = run_batch(params(tmp_path, source, str(tiny_lm)))
    results = read_output(out)
    assert sorted(r["custom_id"] for r in results) == sorted(f"row-{i}" for i in range(40))
    assert all(r["error"] is None for r in results)
    assert report.errors == 0 and report.rows + report.skipped == 40
    assert not list(tmp_path.glob(".out.jsonl*")), "no working file left behind"
