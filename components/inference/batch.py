"""Batch inference: input rows -> shard -> skip what's written -> engine -> append results.

A rerun with the same output skips every id already written (and retries the rows whose error
can succeed on retry), so a run killed at any point and rerun ends with every id exactly once.
Results are matched by ``custom_id``, never by order. What the output may be, and how it is
appended to, is ``components.inference.results_file``: checked here, once, for ``llmw infer``
and the job's steps alike.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from components.ids import Shard
from components.inference.batch_io import (
    EngineUnavailableError,
    InputItem,
    InputRefusedError,
    OutputRefusedError,
    error_result,
    read_items,
)
from components.inference.engines.base import InferenceEngine
from components.inference.models import BatchParams, BatchReport, BatchResult, BatchRow
from components.inference.results_file import ResultWriter, check_local_output
from components.settings import Settings, get_settings

ProgressCallback = Callable[[BatchReport], None]
CHECKPOINT_ROWS = 500
CHECKPOINT_S = 30.0
# Results are made durable at least every WRITE_EVERY_S seconds (or WRITE_EVERY rows); a kill
# loses at most that window, which the rerun redoes. An fsync per row would stall the engine.
WRITE_EVERY = 256
WRITE_EVERY_S = 1.0


def make_engine(params: BatchParams, settings: Settings) -> InferenceEngine:
    """The engine for ``params``, ready: its model found, its server reachable."""
    if params.engine == "openai":
        from components.inference.engines.openai_engine import OpenAIEngine

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        try:
            return OpenAIEngine(
                settings.llm_url, api_key=key, concurrency=params.concurrency, model=params.model
            )
        except (EngineUnavailableError, InputRefusedError) as exc:
            raise type(exc)(f"{exc} (the server is LLMW_LLM_URL)") from None
    if params.engine == "vllm":
        from components.inference.engines.vllm_engine import VLLMEngine

        return VLLMEngine(params.model)
    from components.inference.engines.transformers_engine import TransformersEngine

    return TransformersEngine(params.model, batch_size=params.batch_size)


@contextlib.contextmanager
def local_input(uri: str, settings: Settings) -> Iterator[Path]:
    """The input as a local file: the path itself, or an S3 object downloaded for the duration."""
    if not uri.startswith("s3://"):
        path = Path(uri)
        if path.is_dir():
            raise InputRefusedError(f"input {uri} is a folder: give a file")
        if not path.is_file():
            raise FileNotFoundError(f"input {uri} does not exist")
        yield path
        return
    from components.storage.s3 import minio_client, parse_s3_uri

    bucket, key = parse_s3_uri(uri)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / Path(key).name
        minio_client(settings).fget_object(bucket, key, str(local))
        yield local


class _Output:
    """The output file: local, or a local working copy of an S3 object uploaded at checkpoints.

    Opening it checks it (results_file): the input itself, a folder, or a file that isn't
    results is refused here, before anything runs, and left untouched.
    """

    def __init__(
        self, uri: str, input_uri: str, settings: Settings, work_dir: Path, overwrite: bool = False
    ) -> None:
        self.uri = uri
        self.client: Any = None
        if uri.startswith("s3://"):
            from components.storage.s3 import minio_client, parse_s3_uri

            if uri == input_uri:
                raise OutputRefusedError(f"output {uri} is the input: write results elsewhere")
            self.client = minio_client(settings)
            self.bucket, self.key = parse_s3_uri(uri)
            self.path = work_dir / "output.jsonl"
            if not overwrite:
                self._download()
        else:
            self.path = check_local_output(uri, input_uri)
        self.writer = ResultWriter(self.path, name=uri, overwrite=overwrite)

    def _download(self) -> None:
        """Resume from what an earlier run uploaded, if anything."""
        from minio.error import S3Error

        try:
            self.client.fget_object(self.bucket, self.key, str(self.path))
        except S3Error as exc:
            if exc.code != "NoSuchKey":
                raise

    def checkpoint(self) -> None:
        if self.client is not None and self.path.exists():
            self.client.fput_object(self.bucket, self.key, str(self.path))


def check_output(output: str, input: str, settings: Settings | None = None) -> None:
    """Refuse (OutputRefusedError) an output that is the input or holds anything but results,
    as ``run_batch`` does before it writes: for steps that write ``output`` themselves."""
    with tempfile.TemporaryDirectory() as tmp:
        _Output(output, input, settings or get_settings(), Path(tmp))


class _ResultSink:
    """Collects a shard's results: counts them, writes them in batches, checkpoints to S3.

    It holds what it is given until ``start`` (the engine is ready), so a run that fails before
    then writes nothing.
    """

    def __init__(
        self, output: _Output, report: BatchReport, progress: ProgressCallback | None
    ) -> None:
        self.output = output
        self.writer = output.writer
        self.report = report
        self.progress = progress
        self.pending: list[BatchResult] = []
        self.holding = True
        self.started = time.perf_counter()
        self.last_write = time.monotonic()
        self.last_checkpoint = (time.monotonic(), 0)

    def start(self) -> None:
        self.holding = False

    def emit(self, result: BatchResult) -> None:
        report = self.report
        report.rows += 1
        if result.error is not None:
            report.errors += 1
        usage = (result.response.body.get("usage") if result.response else None) or {}
        report.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        report.completion_tokens += int(usage.get("completion_tokens") or 0)
        self.pending.append(result)
        due = (
            len(self.pending) >= WRITE_EVERY or time.monotonic() - self.last_write >= WRITE_EVERY_S
        )
        if due and not self.holding:
            self.flush()
        if self.progress:
            report.seconds = time.perf_counter() - self.started
            self.progress(report)

    def flush(self) -> None:
        self.writer.write(self.pending)
        self.pending.clear()
        now = self.last_write = time.monotonic()
        at, rows = self.last_checkpoint
        if self.report.rows - rows >= CHECKPOINT_ROWS or now - at >= CHECKPOINT_S:
            self.output.checkpoint()
            self.last_checkpoint = (now, self.report.rows)

    def close(self, complete: bool) -> None:
        """Write what is pending; one row per id; the output exists after a complete run."""
        self.writer.write(self.pending)
        self.pending.clear()
        self.writer.close(complete)
        self.output.checkpoint()

    def owned(self, items: Iterator[InputItem], shard: Shard) -> Iterator[BatchRow]:
        """The rows this shard owns that aren't done yet; unreadable rows become errors.

        A row done with an error stays an error in the output: it counts in ``errors``.
        """
        for item in items:
            if not shard.owns(item.custom_id or f"line:{item.line}"):
                continue
            if item.key in self.writer.done:
                self.report.skipped += 1
                self.report.errors += item.key in self.writer.failed
            elif item.row is None:
                self.emit(error_result(item))
            else:
                yield item.row


def run_batch(
    params: BatchParams,
    settings: Settings | None = None,
    *,
    engine: InferenceEngine | None = None,
    progress: ProgressCallback | None = None,
) -> BatchReport:
    """Run the rows of ``params.input`` that this shard owns and that aren't done yet.

    ``errors`` in the report counts this shard's rows whose result in the output is an error.
    Refused (the output, the input, the model) or failed before the engine is ready, it has
    written nothing.
    """
    settings = settings or get_settings()
    shard = Shard.parse(params.shard)
    report = BatchReport()
    started = time.perf_counter()
    with local_input(params.input, settings) as input_path, tempfile.TemporaryDirectory() as tmp:
        output = _Output(params.output, params.input, settings, Path(tmp), params.overwrite)
        sink = _ResultSink(output, report, progress)
        rows = sink.owned(read_items(input_path, params), shard)
        first = next(rows, None)  # structural refusals surface here, before any engine loads
        if first is not None:
            engine = engine or make_engine(params, settings)
        sink.start()
        complete = False
        try:
            if first is not None and engine is not None:
                engine.process(_chain(first, rows), sink.emit)
            complete = True
        finally:
            sink.close(complete)
    report.seconds = time.perf_counter() - started
    return report


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def merge_outputs(parts: list[Path], output: Path) -> int:
    """Shard outputs -> one JSONL with every id exactly once (an id's last row wins, as in a
    results file); returns the number of lines."""
    last: dict[str, tuple[int, int]] = {}
    for index, part in enumerate(parts):
        for number, (result_id, _) in enumerate(_whole_lines(part)):
            last[result_id] = (index, number)
    keep = set(last.values())
    with output.open("w", encoding="utf-8") as out:
        for index, part in enumerate(parts):
            for number, (_, line) in enumerate(_whole_lines(part)):
                if (index, number) in keep:
                    out.write(line if line.endswith("\n") else line + "\n")
    return len(keep)


def _whole_lines(part: Path) -> Iterator[tuple[str, str]]:
    """(id, line) of each result line; a torn last line from a killed shard is skipped."""
    with part.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)["id"], line
            except (ValueError, KeyError, TypeError):
                continue
