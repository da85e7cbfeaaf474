"""The batch-inference job's steps: plan, run shards, merge, report; local and S3; placement."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from components.inference.batch import run_batch
from components.inference.batch_io import InputRefusedError
from components.inference.models import BatchJobParams, BatchParams
from components.inference.steps import (
    merge_shards,
    plan_shards,
    report_markdown,
    report_metrics,
    run_shard,
    shard_placement,
    shard_report_uri,
    shard_uri,
)
from tests.components.test_batch_inference import read_output, write_batch

ROWS = 6


def job(tmp_path: Path, source: Path, model: Path, **extra: Any) -> dict[str, Any]:
    values = {
        "input": str(source),
        "output": str(tmp_path / "out" / "results.jsonl"),
        "model": str(model),
        "batch_size": 4,
        "max_tokens": 4,
    }
    return values | extra


def run_job(params: dict[str, Any], settings: Any = None) -> tuple[list[str], dict[str, Any]]:
    shards = plan_shards(params, settings)
    reports = [run_shard(params, shard, settings) for shard in shards]
    merged = merge_shards(params, shards, settings=settings)
    assert merge_shards(params, shards, reports, settings) == merged  # given == read back
    return shards, merged


def test_plan_cuts_into_shards_but_never_more_than_rows(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", ROWS)
    assert plan_shards(job(tmp_path, source, tiny_lm)) == ["0/1"]
    assert plan_shards(job(tmp_path, source, tiny_lm, shards=3)) == ["0/3", "1/3", "2/3"]
    assert len(plan_shards(job(tmp_path, source, tiny_lm, shards=64))) == ROWS
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert plan_shards(job(tmp_path, empty, tiny_lm, shards=4)) == ["0/1"]


def test_plan_refuses_a_structural_problem_before_any_engine(tmp_path: Path) -> None:
    dataset = tmp_path / "data.csv"
    dataset.write_text("name,question\na,why?\n")
    params = job(tmp_path, dataset, tmp_path / "no-model", template="{question}", id_column="id")
    with pytest.raises(InputRefusedError, match="no column 'id'"):
        plan_shards(params)


def test_job_parameters_have_shards_not_shard(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="shard"):
        BatchJobParams.model_validate(job(tmp_path, tmp_path, tmp_path, shard="0/2"))
    with pytest.raises(ValidationError, match="less than or equal to 64"):
        BatchJobParams.model_validate(job(tmp_path, tmp_path, tmp_path, shards=65))
    step = BatchJobParams.model_validate(job(tmp_path, tmp_path, tmp_path, shards=2)).for_shard(
        "1/2", "x.jsonl"
    )
    assert isinstance(step, BatchParams) and (step.shard, step.output) == ("1/2", "x.jsonl")
    assert step.batch_size == 4 and step.max_tokens == 4


def test_shards_merge_to_exactly_the_unsharded_set(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", ROWS)
    unsharded = job(tmp_path, source, tiny_lm, output=str(tmp_path / "plain.jsonl"))
    run_batch(BatchParams(**unsharded))

    params = job(tmp_path, source, tiny_lm, shards=2)
    shards, report = run_job(params)

    assert shards == ["0/2", "1/2"]
    output = Path(params["output"])
    merged = read_output(output)
    ids = [r["custom_id"] for r in merged]
    assert sorted(ids) == sorted(f"row-{i}" for i in range(ROWS))  # each exactly once
    plain = read_output(tmp_path / "plain.jsonl")
    assert {(r["custom_id"], r["id"]) for r in merged} == {(r["custom_id"], r["id"]) for r in plain}
    assert all(r["response"]["status_code"] == 200 and r["error"] is None for r in merged)
    # Each shard wrote its own output and report beside the merged output; they stay.
    for shard in shards:
        assert Path(shard_uri(params["output"], shard)).is_file()
        assert json.loads(Path(shard_report_uri(params["output"], shard)).read_text())["rows"]
    assert shard_uri("s3://b/out.jsonl", "1/2") == "s3://b/out.jsonl.shard-1-of-2.jsonl"
    assert report["rows"] == ROWS and report["errors"] == 0 and report["skipped"] == 0
    usage = [r["response"]["body"]["usage"] for r in merged]
    assert report["prompt_tokens"] == sum(u["prompt_tokens"] for u in usage)
    assert report["completion_tokens"] == sum(u["completion_tokens"] for u in usage)
    assert not list(output.parent.glob("*.merging"))

    # A rerun resumes from the shard files: every row is skipped, the output is the same set.
    _, again = run_job(params)
    assert again["rows"] == 0 and again["skipped"] == ROWS
    assert sorted(r["custom_id"] for r in read_output(output)) == sorted(ids)


def test_a_missing_shard_output_fails_the_merge(tmp_path: Path, tiny_lm: Path) -> None:
    source = write_batch(tmp_path / "in.jsonl", ROWS)
    params = job(tmp_path, source, tiny_lm, shards=2)
    report = run_shard(params, "0/2")
    with pytest.raises(FileNotFoundError, match=r"shard-1-of-2\.jsonl does not exist"):
        merge_shards(params, ["0/2", "1/2"], [report, report])
    assert not Path(params["output"]).exists()


def test_s3_input_shards_and_output(s3_settings: Any, tmp_path: Path, tiny_lm: Path) -> None:
    from components.storage.s3 import minio_client

    client = minio_client(s3_settings)
    client.make_bucket("batch-steps")
    source = write_batch(tmp_path / "in.jsonl", ROWS)
    client.fput_object("batch-steps", "in/prompts.jsonl", str(source))
    params = job(
        tmp_path,
        source,
        tiny_lm,
        input="s3://batch-steps/in/prompts.jsonl",
        output="s3://batch-steps/out/results.jsonl",
        shards=2,
    )
    _, report = run_job(params, s3_settings)

    client.fget_object("batch-steps", "out/results.jsonl", str(tmp_path / "merged.jsonl"))
    ids = sorted(r["custom_id"] for r in read_output(tmp_path / "merged.jsonl"))
    assert ids == sorted(f"row-{i}" for i in range(ROWS))
    keys = sorted(o.object_name for o in client.list_objects("batch-steps", "out/"))
    assert keys == [
        "out/results.jsonl",
        "out/results.jsonl.shard-0-of-2.jsonl",
        "out/results.jsonl.shard-0-of-2.report.json",
        "out/results.jsonl.shard-1-of-2.jsonl",
        "out/results.jsonl.shard-1-of-2.report.json",
    ]
    assert report["rows"] == ROWS


def test_metrics_and_markdown() -> None:
    report = {
        "rows": 6,
        "skipped": 2,
        "errors": 1,
        "prompt_tokens": 60,
        "completion_tokens": 24,
        "seconds": 3.0,
    }
    assert report_metrics(report) == {
        "rows": 6.0,
        "skipped": 2.0,
        "errors": 1.0,
        "prompt_tokens": 60.0,
        "completion_tokens": 24.0,
        "seconds": 3.0,
        "tokens_per_second": 8.0,
        "rows_per_second": 2.0,
    }
    params = {"input": "s3://b/in.jsonl", "output": "s3://b/out.jsonl", "model": "m", "shards": 2}
    text = report_markdown(report, params)
    assert text.startswith("# Batch inference\n")
    assert "`s3://b/in.jsonl` through transformers (model `m`) into `s3://b/out.jsonl`" in text
    assert "| answered | 6 |" in text and "| errors | 1 |" in text
    assert "| skipped (already written) | 2 |" in text
    assert "60 prompt tokens, 24 completion tokens (8.0 tokens/s)" in text
    assert "**1** rows have an `error`" in text


def test_shard_placement_per_engine(default_settings: Any) -> None:
    vllm = shard_placement("vllm", default_settings)
    assert vllm is not None and vllm.node == "khelben"
    assert vllm.node_selector == {"kubernetes.io/hostname": "khelben"}
    assert vllm.resource_limits() == {"amd.com/gpu": 1}
    assert vllm.tolerations  # khelben is tainted for vLLM
    transformers = shard_placement("transformers", default_settings)
    assert transformers is not None and transformers.vendor == "cpu"
    assert transformers.resource_limits() == {} and transformers.node_selector == {}
    assert shard_placement("openai", default_settings) is None
