"""The batch-inference job cut into engine steps: plan shards -> run each shard -> merge (+ report).

Inputs and outputs are JSON-ready (dicts, lists, strings) so that KFP components and Hera script
steps pass them as parameters without knowing the models behind them.

Each shard writes its results beside the output, ``<output>.shard-I-of-N.jsonl`` (local or
s3://), and its report beside those, ``<output>.shard-I-of-N.report.json``; the merge step writes
every id exactly once into ``output``. Shard files are kept: a rerun with the same output and
shard count resumes from them (every id already written is skipped).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from components.cluster.inventory import load_inventory
from components.cluster.placement import Placement, place
from components.ids import Shard
from components.inference.batch import check_output, local_input, merge_outputs, run_batch
from components.inference.batch_io import read_items
from components.inference.models import ENGINE_NEEDS, BatchJobParams, BatchReport
from components.settings import Settings, get_settings
from components.storage.objects import is_s3, local_copy, read_text, upload_file, write_text


def job_params(**values: Any) -> dict[str, Any]:
    """The job's parameters out of an engine step's arguments (``**locals()``): the job's fields
    only, with the empty strings engines use for "none" (template, id_column) made None."""
    params = {name: values[name] for name in BatchJobParams.model_fields if name in values}
    for name in ("template", "id_column"):
        params[name] = params.get(name) or None
    return params


def shard_placement(engine: str, settings: Settings | None = None) -> Placement | None:
    """Where an engine's shard step runs; None: anywhere, on the component image (openai)."""
    need = ENGINE_NEEDS[engine]
    if need is None:
        return None
    return place(need, load_inventory((settings or get_settings()).cluster_inventory))


def shard_uri(output: str, shard: str) -> str:
    """Where shard ``I/N`` writes its results: ``<output>.shard-I-of-N.jsonl``."""
    parsed = Shard.parse(shard)
    return f"{output}.shard-{parsed.index}-of-{parsed.count}.jsonl"


def shard_report_uri(output: str, shard: str) -> str:
    """Where shard ``I/N`` writes its report: ``<output>.shard-I-of-N.report.json``."""
    parsed = Shard.parse(shard)
    return f"{output}.shard-{parsed.index}-of-{parsed.count}.report.json"


def plan_shards(params: dict[str, Any], settings: Settings | None = None) -> list[str]:
    """Read the input once (refusing a structural problem before any engine loads) and cut it
    into ``shards`` shards ``I/N``, never more than it has rows."""
    settings = settings or get_settings()
    model = BatchJobParams.model_validate(params)
    check_output(model.output, model.input, settings)  # never replace what isn't results
    with local_input(model.input, settings) as path:
        rows = sum(1 for _ in read_items(path, model))
    count = max(1, min(model.shards, rows))
    return [f"{i}/{count}" for i in range(count)]


def run_shard(
    params: dict[str, Any], shard: str = "0/1", settings: Settings | None = None
) -> dict[str, Any]:
    """Run one shard into its own output (resuming what it holds); returns its report."""
    settings = settings or get_settings()
    model = BatchJobParams.model_validate(params)
    report = run_batch(model.for_shard(shard, shard_uri(model.output, shard)), settings)
    result = report.model_dump()
    write_text(shard_report_uri(model.output, shard), json.dumps(result), settings)
    return result


def merge_shards(
    params: dict[str, Any],
    shards: list[str],
    shard_reports: list[dict[str, Any]] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Merge the shards' outputs into ``output`` (every id once); returns the run's report.

    The shards' reports are given (KFP collects them) or read from beside their outputs.
    """
    settings = settings or get_settings()
    model = BatchJobParams.model_validate(params)
    check_output(model.output, model.input, settings)  # never replace what isn't results
    if shard_reports is None:
        shard_reports = [
            json.loads(read_text(shard_report_uri(model.output, shard), settings))
            for shard in shards
        ]
    report = BatchReport.merge([BatchReport.model_validate(r) for r in shard_reports])
    with tempfile.TemporaryDirectory(prefix="llmw-merge-") as tmp:
        parts = [
            local_copy(shard_uri(model.output, shard), Path(tmp) / f"part-{i}.jsonl", settings)
            for i, shard in enumerate(shards)
        ]
        _merge_into(parts, model.output, Path(tmp), settings)
    return report.model_dump()


def report_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Flat numeric metrics for the Kubeflow UI (rows by outcome, tokens, seconds, rates)."""
    model = BatchReport.model_validate(report)
    metrics = {name: float(value) for name, value in model.model_dump().items()}
    metrics["seconds"] = round(model.seconds, 3)
    metrics["tokens_per_second"] = round(model.tokens_per_second, 3)
    metrics["rows_per_second"] = round(model.rows_per_second, 3)
    return metrics


def results_metadata(report: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """What stands for the run's output in an engine's lineage (KFP's ``results`` Dataset): where
    the results are, in which format, what made them, and the row counts."""
    model = BatchReport.model_validate(report)
    p = BatchJobParams.model_validate(params)
    return {
        "uri": p.output,
        "format": "jsonl",
        "engine": p.engine,
        "model": p.model,
        "rows": model.rows,
        "errors": model.errors,
        "skipped": model.skipped,
    }


def report_markdown(report: dict[str, Any], params: dict[str, Any]) -> str:
    """A Markdown summary of the run, for the Kubeflow UI and Argo's outputs."""
    model = BatchReport.model_validate(report)
    p = BatchJobParams.model_validate(params)
    lines = [
        "# Batch inference",
        "",
        f"`{p.input}` through {p.engine} (model `{p.model}`) into `{p.output}`.",
        "",
        "| rows | count |",
        "| --- | ---: |",
        f"| answered | {model.rows} |",
        f"| errors | {model.errors} |",
        f"| skipped (already written) | {model.skipped} |",
        "",
        f"**{model.rows}** rows answered in {model.seconds:.1f} s "
        f"({model.rows_per_second:.2f} rows/s); {model.prompt_tokens} prompt tokens, "
        f"{model.completion_tokens} completion tokens ({model.tokens_per_second:.1f} tokens/s).",
    ]
    if model.errors:
        lines += ["", f"**{model.errors}** rows have an `error` in the output."]
    return "\n".join(lines) + "\n"


def _merge_into(parts: list[Path], output: str, work_dir: Path, settings: Settings) -> None:
    """Merge ``parts`` into ``output``, replacing it whole (never a half-merged file)."""
    if is_s3(output):
        merged = work_dir / "merged.jsonl"
        merge_outputs(parts, merged)
        upload_file(merged, output, settings)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".merging")
    merge_outputs(parts, partial)
    os.replace(partial, target)
