"""`llmw infer`: a thin wrapper over components.inference.batch.run_batch."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from components.exit_codes import EXIT_FAILED
from components.exit_codes import batch_status as exit_status
from llmw.progress import fail

if TYPE_CHECKING:
    from components.inference.models import BatchParams, BatchReport

# The engines BatchOptions.engine admits (a test keeps the two the same); a Literal, so that
# --help lists them and typer refuses any other.
EngineName = Literal["transformers", "openai", "vllm"]


def infer(
    input: Annotated[str, typer.Argument(help="OpenAI batch JSONL, or a dataset; path or s3://")],
    output: Annotated[str, typer.Option("--output", help="Results JSONL; path or s3://.")],
    model: Annotated[str, typer.Option("--model", help="Model path, or the served model name.")],
    engine: Annotated[
        EngineName,
        typer.Option("--engine", help="transformers (CPU/GPU), openai (LLMW_LLM_URL) or vllm."),
    ] = "transformers",
    template: Annotated[
        str | None, typer.Option("--template", help="Prompt template over dataset columns.")
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Dataset column holding the row id.")
    ] = None,
    shard: Annotated[str, typer.Option("--shard", help="I/N: this shard of N.")] = "0/1",
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight.")] = 8,
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Default max tokens.")] = 64,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an output that is not a results file.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run a dataset of prompts through a model; a rerun skips what the output already holds
    and retries the rows whose error can succeed on retry.

    Exit codes: 0 done; 3 some rows have an error in the output (every other row is in it);
    2 bad input, model or output (nothing written); 1 the engine's server can't be reached.
    """
    if not output.strip():
        raise fail("--output is empty: give a file path or an s3:// URI")
    params = _batch_params(
        input=input,
        output=output,
        model=model,
        engine=engine,
        template=template,
        id_column=id_column,
        shard=shard,
        concurrency=concurrency,
        max_tokens=max_tokens,
        overwrite=overwrite,
    )
    report = _run(params, show_progress=sys.stderr.isatty() and not as_json)
    summary = {
        "rows": report.rows,
        "skipped": report.skipped,
        "errors": report.errors,
        "prompt_tokens": report.prompt_tokens,
        "completion_tokens": report.completion_tokens,
        "seconds": round(report.seconds, 3),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print(report)
    status = exit_status(report.model_dump())  # the same as `llmw run batch-inference`
    if status.code:
        raise fail(status.message or f"exit code {status.code}", status.code)


def _run(params: BatchParams, show_progress: bool) -> BatchReport:
    """run_batch, its failures each one line and an exit code."""
    from components.inference.batch import run_batch
    from components.inference.batch_io import EngineUnavailableError
    from llmw.progress import StatusLine

    try:
        with StatusLine(enabled=show_progress) as line:
            return run_batch(params, progress=lambda r: line.show(_describe(r)))
    except EngineUnavailableError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except (FileNotFoundError, RuntimeError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        if exc.filename is None:
            raise
        raise fail(f"{exc.filename}: {exc.strerror or type(exc).__name__}") from None


def _batch_params(**values: Any) -> BatchParams:
    """The command's options as the job's model, or exit 2 naming each problem."""
    from pydantic import ValidationError

    from components.inference.models import BatchParams

    try:
        return BatchParams(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise fail(problems) from None


def _describe(report: BatchReport) -> str:
    return (
        f"rows {report.rows} · {report.rows_per_second:.1f} rows/s · "
        f"{report.tokens_per_second:.1f} tokens/s · errors {report.errors}"
    )


def _print(report: BatchReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Batch inference summary", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in [
        ("rows done", report.rows),
        ("skipped (already done)", report.skipped),
        ("errors in the output", report.errors),
        ("tokens (prompt / completion)", f"{report.prompt_tokens} / {report.completion_tokens}"),
        ("seconds", f"{report.seconds:.1f}"),
        ("rows/s", f"{report.rows_per_second:.2f}"),
        ("tokens/s", f"{report.tokens_per_second:.1f}"),
    ]:
        table.add_row(name, str(value))
    Console().print(table)
